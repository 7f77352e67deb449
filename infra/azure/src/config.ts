// Stack config → a typed, validated StackConfig. Everything the program needs from the
// user passes through here, so a mistake stops `pulumi up` before anything is created.

import * as pulumi from "@pulumi/pulumi";
import { readSettings } from "./settings";

export interface StackConfig {
    readonly location: string;
    readonly siteId: string;
    readonly tags: Readonly<Record<string, string>>;
    /** Config-sourced app settings, keyed by env name (see settings.ts). */
    readonly settings: ReadonlyMap<string, pulumi.Output<string>>;
    readonly maxNodes: number;
    readonly monthlyBudgetUsd: number;
    /** Spot max price of the scale set and the core's price per node-hour: one number. */
    readonly pricePerNodeHour: number;
    readonly budgetAlertEmails: readonly string[];
    /** First day of a month, `YYYY-MM-01T00:00:00Z`. */
    readonly budgetStartDate: string;
    readonly vmSize: string;
    readonly adminUsername: string;
    readonly sshPublicKey: string;
    readonly nodeTailscaleAuthKey: pulumi.Output<string>;
    readonly nodeTailscaleTags: string;
    readonly nodeJoinScript: pulumi.Output<string> | undefined;
    readonly nodePublicIp: boolean;
    readonly functionMaxInstances: number;
    readonly functionInstanceMemoryMb: number;
    readonly functionRuntimeVersion: string;
    readonly allowAsyncOperationPolling: boolean;
}

export class ConfigError extends Error {}

function fail(cfg: pulumi.Config, key: string, why: string): never {
    throw new ConfigError(`stack config ${cfg.name}:${key}: ${why}`);
}

function num(cfg: pulumi.Config, key: string, fallback: string, check: (n: number) => boolean, what: string): number {
    const raw = cfg.get(key) ?? fallback;
    const n = Number(raw);
    if (raw.trim() === "" || !Number.isFinite(n) || !check(n)) fail(cfg, key, `expected ${what}, got ${JSON.stringify(raw)}`);
    return n;
}

function bool(cfg: pulumi.Config, key: string, fallback: boolean): boolean {
    const raw = cfg.get(key);
    if (raw === undefined) return fallback;
    if (raw === "true") return true;
    if (raw === "false") return false;
    return fail(cfg, key, `expected true or false, got ${JSON.stringify(raw)}`);
}

/** `YYYY-MM-01T00:00:00Z` of the month containing `now` (UTC). */
export function firstOfMonth(now: Date): string {
    const y = now.getUTCFullYear();
    const m = String(now.getUTCMonth() + 1).padStart(2, "0");
    return `${y}-${m}-01T00:00:00Z`;
}

/** NCRONTAB as the Functions host reads it: six fields, seconds first. */
export function isNcrontab(expr: string): boolean {
    const fields = expr.trim().split(/\s+/);
    return fields.length === 6 && fields.every((f) => /^[0-9*,/\-A-Za-z]+$/.test(f));
}

/** Returns why a value is not a PEM SubjectPublicKeyInfo, or undefined when it is one. */
export function checkEd25519Pem(v: string): string | undefined {
    const t = v.trim();
    if (!t.startsWith("-----BEGIN PUBLIC KEY-----") || !t.endsWith("-----END PUBLIC KEY-----")) {
        return "expected a PEM public key (-----BEGIN PUBLIC KEY----- ... -----END PUBLIC KEY-----)";
    }
    const body = t.slice("-----BEGIN PUBLIC KEY-----".length, -"-----END PUBLIC KEY-----".length).replace(/\s+/g, "");
    // An Ed25519 SubjectPublicKeyInfo is 44 bytes: a 12-byte header, then the 32-byte key.
    const der = Buffer.from(body, "base64");
    if (der.length !== 44 || der.subarray(0, 12).toString("hex") !== "302a300506032b6570032100") {
        return "the PEM is not an Ed25519 public key";
    }
    return undefined;
}

export function checkHs256Secret(v: string): string | undefined {
    return v.length >= 32 ? undefined : "use at least 32 characters";
}

export function checkHttpsUrl(v: string): string | undefined {
    try {
        return new URL(v).protocol === "https:" ? undefined : "expected an https:// URL";
    } catch {
        return "expected an https:// URL";
    }
}

export const VM_SIZE = "Standard_D2s_v3";

/**
 * Reads and checks the stack config. `now` only picks the default budget start month;
 * it is a parameter so tests need no clock.
 */
export function loadConfig(cfg: pulumi.Config, now: Date): StackConfig {
    const location = cfg.get("location") ?? fail(cfg, "location", "required: the Azure region, e.g. westeurope (must offer Flex Consumption)");

    const siteId = cfg.get("siteId") ?? "home";
    if (!/^[a-z0-9]([a-z0-9-]{0,22}[a-z0-9])?$/.test(siteId)) {
        fail(cfg, "siteId", "lowercase letters, digits and '-', at most 24 characters (it is part of resource names)");
    }

    const probe = cfg.get("probeSchedule");
    if (probe !== undefined && !isNcrontab(probe)) {
        fail(cfg, "probeSchedule", `expected an NCRONTAB expression with 6 fields (seconds first), got ${JSON.stringify(probe)}`);
    }

    const maxNodes = num(cfg, "maxNodes", "5", (n) => Number.isInteger(n) && n >= 0 && n <= 100, "an integer 0..100");
    const monthlyBudgetUsd = num(cfg, "monthlyBudgetUsd", "20", (n) => n > 0, "a positive number of USD");
    const pricePerNodeHour = num(cfg, "pricePerNodeHour", "0.05", (n) => n > 0, "a positive price in USD");

    // Secrets are read with getSecret (never get, which would warn and unwrap them);
    // presence is checked now, format when the value is resolved.
    const hasEd = cfg.getSecret("agentEd25519PublicKey") !== undefined;
    const hasHs = cfg.getSecret("agentHs256Secret") !== undefined;
    if (!hasEd && !hasHs) {
        fail(cfg, "agentEd25519PublicKey", "set it (preferred; `burst-agent keygen` prints the PEM) or agentHs256Secret, else no agent can authenticate");
    }
    if (hasEd && hasHs) {
        // The function pins one algorithm and refuses to start with both configured.
        fail(cfg, "agentHs256Secret", "set agentEd25519PublicKey or agentHs256Secret, not both (`pulumi config rm` one)");
    }
    const settings = new Map(readSettings(cfg));
    const check = (env: string, key: string, validate: (v: string) => string | undefined) => {
        const v = settings.get(env);
        if (v !== undefined) settings.set(env, v.apply((x) => {
            const why = validate(x);
            return why === undefined ? x : fail(cfg, key, why);
        }));
    };
    check("BURST_AGENT_ED25519_PUBLIC_KEY", "agentEd25519PublicKey", checkEd25519Pem);
    check("BURST_AGENT_HS256_SECRET", "agentHs256Secret", checkHs256Secret);
    check("DISCORD_WEBHOOK_URL", "discordWebhookUrl", checkHttpsUrl);

    const emails = cfg.getObject<string[]>("budgetAlertEmails") ?? fail(cfg, "budgetAlertEmails", 'required: a JSON list, e.g. \'["you@example.org"]\'');
    if (!Array.isArray(emails) || emails.length === 0 || !emails.every((e) => typeof e === "string" && /^[^@\s]+@[^@\s]+$/.test(e))) {
        fail(cfg, "budgetAlertEmails", "expected a non-empty JSON list of email addresses");
    }

    const budgetStartDate = cfg.get("budgetStartDate") ?? firstOfMonth(now);
    if (!/^\d{4}-\d{2}-01T00:00:00Z$/.test(budgetStartDate)) fail(cfg, "budgetStartDate", "must be the first of a month, YYYY-MM-01T00:00:00Z");

    const adminUsername = cfg.get("adminUsername") ?? "burst";
    if (!/^[a-z_][a-z0-9_-]{0,31}$/.test(adminUsername) || ["root", "admin", "administrator"].includes(adminUsername)) {
        fail(cfg, "adminUsername", "a Linux user name that Azure accepts (not root/admin)");
    }
    const sshPublicKey = cfg.get("sshPublicKey") ?? fail(cfg, "sshPublicKey", "required: an OpenSSH public key line (ssh-ed25519 ... or ssh-rsa ...)");
    if (!/^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/=]+( .*)?$/.test(sshPublicKey.trim())) {
        fail(cfg, "sshPublicKey", "expected an OpenSSH public key line");
    }

    const tsAuth = cfg.getSecret("nodeTailscaleAuthKey") ?? fail(cfg, "nodeTailscaleAuthKey", "required (secret): a reusable, pre-approved, tagged Tailscale auth key for burst nodes");
    const joinScript = cfg.getSecret("nodeJoinScript");

    const nodeTailscaleTags = cfg.get("nodeTailscaleTags") ?? "tag:burst";
    if (!/^tag:[a-z0-9-]+(,tag:[a-z0-9-]+)*$/i.test(nodeTailscaleTags)) fail(cfg, "nodeTailscaleTags", "expected tag:name[,tag:name...]");

    const functionInstanceMemoryMb = num(cfg, "functionInstanceMemoryMb", "512", (n) => [512, 2048, 4096].includes(n), "512, 2048 or 4096");
    const functionMaxInstances = num(cfg, "functionMaxInstances", "40", (n) => Number.isInteger(n) && n >= 1 && n <= 1000, "an integer 1..1000");

    return {
        location,
        siteId,
        tags: { project: "hybrid-burst", "hybrid-burst-site": siteId },
        settings,
        maxNodes,
        monthlyBudgetUsd,
        pricePerNodeHour,
        budgetAlertEmails: emails,
        budgetStartDate,
        vmSize: cfg.get("vmSize") ?? VM_SIZE,
        adminUsername,
        sshPublicKey: sshPublicKey.trim(),
        nodeTailscaleAuthKey: tsAuth.apply((k) => (/^tskey-/.test(k) ? k : fail(cfg, "nodeTailscaleAuthKey", "expected a Tailscale auth key (tskey-...)"))),
        nodeTailscaleTags,
        nodeJoinScript: joinScript,
        nodePublicIp: bool(cfg, "nodePublicIp", true),
        functionMaxInstances,
        functionInstanceMemoryMb,
        functionRuntimeVersion: cfg.get("functionRuntimeVersion") ?? "1.0",
        allowAsyncOperationPolling: bool(cfg, "allowAsyncOperationPolling", false),
    };
}
