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
    /** Accelerated networking on the nodes' NIC: only where the size supports it (see acceleratedNetworkingProblem). */
    readonly nodeAcceleratedNetworking: boolean;
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
    /** Let `pulumi up` run while the scale set has capacity > 0 (see capacity.ts). */
    readonly allowUpDuringBurst: boolean;
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

export const FLEX_MAX_INSTANCES_MIN = 40;
export const FLEX_MAX_INSTANCES_MAX = 1000;

/**
 * Checks an OpenSSH public key line (`<type> <base64> [comment]`) against what Azure accepts
 * for Linux VMs: SSH-2 RSA of at least 2048 bits, or Ed25519. ECDSA (and ECDH) keys are not
 * supported (Azure docs, "Detailed steps: Create and manage SSH keys ...", Supported SSH key
 * formats). The base64 blob is decoded and its own type and key size are checked too.
 */
export function checkSshPublicKey(line: string): string | undefined {
    const m = /^(\S+) ([A-Za-z0-9+/]+={0,2})(?: .*)?$/.exec(line.trim());
    if (!m) return "expected an OpenSSH public key line: ssh-ed25519 AAAA... or ssh-rsa AAAA... (one line, from the .pub file)";
    const [, type, b64] = m as unknown as [string, string, string];
    if (type !== "ssh-ed25519" && type !== "ssh-rsa") {
        return `Azure accepts ssh-rsa (2048 bits or more) and ssh-ed25519 keys only, not ${type}; create one with ssh-keygen -t ed25519`;
    }
    const blob = Buffer.from(b64, "base64");
    const fields: Buffer[] = [];
    for (let at = 0; at < blob.length; ) {
        if (at + 4 > blob.length) return "the key's base64 data is truncated";
        const len = blob.readUInt32BE(at);
        if (at + 4 + len > blob.length) return "the key's base64 data is truncated";
        fields.push(blob.subarray(at + 4, at + 4 + len));
        at += 4 + len;
    }
    if (fields[0]?.toString("latin1") !== type) return `the key data is not a ${type} key (it says ${JSON.stringify(fields[0]?.toString("latin1") ?? "")})`;
    if (type === "ssh-ed25519") return fields.length === 2 && fields[1]!.length === 32 ? undefined : "not a valid ssh-ed25519 key (expected a 32-byte key)";
    // ssh-rsa: string type, mpint e, mpint n. The modulus' bit length, without mpint's sign byte.
    const n = fields[2];
    if (fields.length !== 3 || n === undefined) return "not a valid ssh-rsa key";
    let i = 0;
    while (i < n.length && n[i] === 0) i++;
    const bits = i === n.length ? 0 : (n.length - i - 1) * 8 + (32 - Math.clz32(n[i]!));
    return bits >= 2048 ? undefined : `Azure needs RSA keys of at least 2048 bits, this one has ${bits}`;
}

/**
 * vCPUs of an Azure size from its name: `Standard_D2s_v3` → 2; a constrained-vCPU size such as
 * `Standard_E4-2s_v3` → 2 (the active vCPUs). Undefined when the name does not follow the pattern.
 */
export function vcpusOfSize(size: string): number | undefined {
    const m = /^Standard_[A-Za-z]+(\d+)(?:-(\d+))?/.exec(size);
    if (!m) return undefined;
    return Number(m[2] ?? m[1]);
}

/**
 * Sizes Spot cannot use: B-series and Promo sizes (Azure docs, "Azure Spot Virtual Machines for
 * Virtual Machine Scale Sets", Limitations).
 */
export function checkSpotVmSize(size: string): string | undefined {
    if (!/^Standard_[A-Za-z0-9_-]+$/.test(size)) return `expected an Azure VM size such as ${VM_SIZE}, got ${JSON.stringify(size)}`;
    if (/^Standard_B\d/i.test(size)) return "B-series sizes cannot run as Spot VMs";
    if (/_Promo$/i.test(size)) return "Promo sizes cannot run as Spot VMs";
    return undefined;
}

/**
 * Why accelerated networking cannot be switched on for this size, or undefined when nothing we
 * know of stands against it. Azure's accelerated-networking overview: most general-purpose and
 * compute-optimized sizes with 2 or more vCPUs support it, but on sizes with hyperthreading
 * (D/Dsv3, Dsv4, Esv3, Fsv2, ... — nearly all current ones) only those with 4 or more vCPUs
 * do; ARM rejects the scale set otherwise ("... is not in the allowed list of VM sizes for
 * accelerated networking", see also azure-cli#13757). `az vm list-skus --location <region>
 * --size <size> --all --query "[].capabilities[?name=='AcceleratedNetworkingEnabled']"` is
 * the authoritative answer for one size.
 */
export function acceleratedNetworkingProblem(size: string): string | undefined {
    const vcpus = vcpusOfSize(size);
    if (vcpus !== undefined && vcpus < 4) {
        return (
            `${size} has ${vcpus} vCPUs: accelerated networking on hyperthreaded sizes needs 4 or more, and Azure ` +
            "rejects the scale set otherwise. Leave nodeAcceleratedNetworking unset (it follows vmSize) or pick a size with 4+ vCPUs"
        );
    }
    return undefined;
}

/** Accelerated networking unless the size is too small or unknown (then off: safe, just slower). */
export function acceleratedNetworkingDefault(size: string): boolean {
    return vcpusOfSize(size) !== undefined && acceleratedNetworkingProblem(size) === undefined;
}

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
    const sshWhy = checkSshPublicKey(sshPublicKey);
    if (sshWhy !== undefined) fail(cfg, "sshPublicKey", sshWhy);

    const tsAuth = cfg.getSecret("nodeTailscaleAuthKey") ?? fail(cfg, "nodeTailscaleAuthKey", "required (secret): a reusable, pre-approved, tagged Tailscale auth key for burst nodes");
    const joinScript = cfg.getSecret("nodeJoinScript");

    const nodeTailscaleTags = cfg.get("nodeTailscaleTags") ?? "tag:burst";
    if (!/^tag:[a-z0-9-]+(,tag:[a-z0-9-]+)*$/i.test(nodeTailscaleTags)) fail(cfg, "nodeTailscaleTags", "expected tag:name[,tag:name...]");
    // BURST_TAILSCALE_TAGS marks *on-prem* devices (a device with any of them counts as home
    // being up, shared/tailscale/README.md). A burst node's tag there would make the cloud
    // nodes vouch for the home site during the very outage they were started for.
    const probeTags = (cfg.get("tailscaleTags") ?? "").split(",").map((t) => t.trim().toLowerCase()).filter((t) => t !== "");
    const shared = nodeTailscaleTags.toLowerCase().split(",").filter((t) => probeTags.includes(t));
    if (shared.length > 0) {
        fail(cfg, "tailscaleTags", `lists ${shared.join(", ")}, the burst nodes' tag (nodeTailscaleTags): the probe would count cloud nodes as home devices; use the home nodes' tag, e.g. tag:home`);
    }

    const functionInstanceMemoryMb = num(cfg, "functionInstanceMemoryMb", "512", (n) => [512, 2048, 4096].includes(n), "512, 2048 or 4096");
    // Flex Consumption's maximumInstanceCount: the lowest maximum it accepts is 40, the highest 1000
    // (Azure Functions docs, "Flex Consumption plan hosting", Considerations: Scale).
    const functionMaxInstances = num(
        cfg,
        "functionMaxInstances",
        String(FLEX_MAX_INSTANCES_MIN),
        (n) => Number.isInteger(n) && n >= FLEX_MAX_INSTANCES_MIN && n <= FLEX_MAX_INSTANCES_MAX,
        `an integer ${FLEX_MAX_INSTANCES_MIN}..${FLEX_MAX_INSTANCES_MAX} (Flex Consumption's lowest maximum is ${FLEX_MAX_INSTANCES_MIN})`,
    );

    const vmSize = cfg.get("vmSize") ?? VM_SIZE;
    const sizeWhy = checkSpotVmSize(vmSize);
    if (sizeWhy !== undefined) fail(cfg, "vmSize", sizeWhy);
    const anRaw = cfg.get("nodeAcceleratedNetworking");
    const nodeAcceleratedNetworking = anRaw === undefined ? acceleratedNetworkingDefault(vmSize) : bool(cfg, "nodeAcceleratedNetworking", false);
    if (nodeAcceleratedNetworking) {
        const why = acceleratedNetworkingProblem(vmSize);
        if (why !== undefined) fail(cfg, "nodeAcceleratedNetworking", why);
    }

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
        vmSize,
        nodeAcceleratedNetworking,
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
        allowUpDuringBurst: bool(cfg, "allowUpDuringBurst", false),
    };
}
