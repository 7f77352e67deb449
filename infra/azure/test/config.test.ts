// Stack config validation: a mistake stops `pulumi up` with a message naming the key.

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import * as crypto from "node:crypto";
import * as pulumi from "@pulumi/pulumi";

import { BASE_CONFIG, ED25519_PEM, installMocks, setConfig, valueOf } from "./harness";
import {
    acceleratedNetworkingDefault,
    checkEd25519Pem,
    checkHttpsUrl,
    checkSshPublicKey,
    firstOfMonth,
    isNcrontab,
    loadConfig,
    vcpusOfSize,
} from "../src/config";
import { DEFAULT_PROBE_SCHEDULE } from "../src/settings";

installMocks();

const NOW = new Date("2027-03-17T12:00:00Z");
const load = (overrides: Record<string, string | undefined>) => {
    const c: Record<string, string> = { ...BASE_CONFIG };
    for (const [k, v] of Object.entries(overrides)) {
        if (v === undefined) delete c[`hybrid-burst:${k}`];
        else c[`hybrid-burst:${k}`] = v;
    }
    setConfig(c);
    return loadConfig(new pulumi.Config("hybrid-burst"), NOW);
};
const rejects = (overrides: Record<string, string | undefined>, key: string, pattern?: RegExp) =>
    assert.throws(() => load(overrides), (e: Error) => e.message.includes(`hybrid-burst:${key}`) && (pattern === undefined || pattern.test(e.message)));

describe("required keys", () => {
    for (const key of ["location", "tailscaleWebhookSecret", "discordWebhookUrl", "budgetAlertEmails", "sshPublicKey", "nodeTailscaleAuthKey"]) {
        test(`${key} missing → error naming it`, () => rejects({ [key]: undefined }, key));
    }
    test("no agent key at all → error", () => rejects({ agentEd25519PublicKey: undefined, agentHs256Secret: undefined }, "agentEd25519PublicKey", /burst-agent keygen/));
    test("exactly one agent credential", () => {
        assert.doesNotThrow(() => load({}));
        assert.doesNotThrow(() => load({ agentEd25519PublicKey: undefined, agentHs256Secret: "x".repeat(32) }));
        rejects({ agentHs256Secret: "x".repeat(32) }, "agentHs256Secret", /not both/);
    });
});

describe("formats", () => {
    test("probe schedule must be 6-field NCRONTAB", () => {
        rejects({ probeSchedule: "*/5 * * * *" }, "probeSchedule");
        assert.ok(isNcrontab(DEFAULT_PROBE_SCHEDULE));
        assert.ok(isNcrontab("0 */5 * * * *"));
        assert.ok(!isNcrontab("*/30 * * * * * *"));
    });
    test("numbers", () => {
        rejects({ maxNodes: "-1" }, "maxNodes");
        rejects({ maxNodes: "2.5" }, "maxNodes");
        rejects({ maxNodes: "" }, "maxNodes");
        rejects({ monthlyBudgetUsd: "0" }, "monthlyBudgetUsd");
        rejects({ pricePerNodeHour: "cheap" }, "pricePerNodeHour");
        rejects({ functionInstanceMemoryMb: "1024" }, "functionInstanceMemoryMb");
    });
    test("functionMaxInstances: Flex Consumption's range, 40..1000", () => {
        for (const bad of ["1", "39", "1001", "40.5"]) rejects({ functionMaxInstances: bad }, "functionMaxInstances", /40\.\.1000/);
        assert.equal(load({ functionMaxInstances: "40" }).functionMaxInstances, 40);
        assert.equal(load({ functionMaxInstances: "1000" }).functionMaxInstances, 1000);
        assert.equal(load({}).functionMaxInstances, 40);
    });
    test("accelerated networking follows the size: off below 4 vCPUs, on from 4", () => {
        assert.equal(load({}).nodeAcceleratedNetworking, false, "default Standard_D2s_v3 (2 vCPUs, hyperthreaded)");
        assert.equal(load({ vmSize: "Standard_D4s_v3" }).nodeAcceleratedNetworking, true);
        assert.equal(load({ vmSize: "Standard_D4s_v3", nodeAcceleratedNetworking: "false" }).nodeAcceleratedNetworking, false);
        assert.equal(load({ vmSize: "Standard_F8s_v2", nodeAcceleratedNetworking: "true" }).nodeAcceleratedNetworking, true);
        // Asking for it on a size Azure rejects it on stops `pulumi up` here, not in ARM.
        rejects({ nodeAcceleratedNetworking: "true" }, "nodeAcceleratedNetworking", /Standard_D2s_v3 has 2 vCPUs/);
        rejects({ vmSize: "Standard_E4-2s_v3", nodeAcceleratedNetworking: "true" }, "nodeAcceleratedNetworking", /2 vCPUs/);
        rejects({ nodeAcceleratedNetworking: "yes" }, "nodeAcceleratedNetworking");
        assert.equal(vcpusOfSize("Standard_D2s_v3"), 2);
        assert.equal(vcpusOfSize("Standard_D16ds_v5"), 16);
        assert.equal(vcpusOfSize("Standard_E4-2s_v3"), 2);
        assert.equal(vcpusOfSize("weird"), undefined);
        assert.equal(acceleratedNetworkingDefault("weird"), false);
    });
    test("the probe's on-prem tags never include the burst nodes' tag", () => {
        rejects({ tailscaleTags: "tag:home,tag:burst" }, "tailscaleTags", /tag:burst, the burst nodes' tag/);
        rejects({ tailscaleTags: "tag:home", nodeTailscaleTags: "tag:cloud,tag:home" }, "tailscaleTags", /tag:home/);
        assert.doesNotThrow(() => load({ tailscaleTags: "tag:home,tag:home-router" }));
        assert.doesNotThrow(() => load({ tailscaleTags: undefined }));
    });
    test("vm size: a size Spot can run (no B-series, no Promo)", () => {
        rejects({ vmSize: "Standard_B2s" }, "vmSize", /B-series/);
        rejects({ vmSize: "Standard_DS3_v2_Promo" }, "vmSize", /Promo/);
        rejects({ vmSize: "D2s_v3" }, "vmSize", /Azure VM size/);
        assert.equal(load({ vmSize: "Standard_D2as_v5" }).vmSize, "Standard_D2as_v5");
    });
    test("site id is usable in resource names", () => {
        rejects({ siteId: "Home Lab" }, "siteId");
        rejects({ siteId: "x".repeat(25) }, "siteId");
        assert.equal(load({ siteId: "lab-2" }).siteId, "lab-2");
    });
    test("emails", () => {
        rejects({ budgetAlertEmails: "owner@example.org" }, "budgetAlertEmails");
        rejects({ budgetAlertEmails: "[]" }, "budgetAlertEmails");
        rejects({ budgetAlertEmails: '["not-an-email"]' }, "budgetAlertEmails");
    });
    test("ssh key and admin user", () => {
        rejects({ sshPublicKey: "-----BEGIN OPENSSH PRIVATE KEY-----" }, "sshPublicKey");
        rejects({ adminUsername: "root" }, "adminUsername");
    });
    test("ssh key: only what Azure accepts, ssh-ed25519 or ssh-rsa of 2048+ bits (no ECDSA)", () => {
        assert.doesNotThrow(() => load({}));
        assert.equal(checkSshPublicKey(BASE_CONFIG["hybrid-burst:sshPublicKey"]!), undefined);
        assert.equal(checkSshPublicKey(sshRsa(2048)), undefined);
        assert.equal(checkSshPublicKey(sshRsa(4096) + " with a comment"), undefined);
        for (const curve of ["256", "384", "521"] as const) {
            const line = sshEcdsa(curve);
            assert.match(checkSshPublicKey(line) ?? "", /ssh-rsa .* ssh-ed25519 keys only, not ecdsa-sha2-nistp/);
            rejects({ sshPublicKey: line }, "sshPublicKey", /not ecdsa-sha2-nistp/);
        }
        rejects({ sshPublicKey: sshRsa(1024) }, "sshPublicKey", /at least 2048 bits, this one has 1024/);
        // The blob must be what the prefix says, and whole.
        const ed = BASE_CONFIG["hybrid-burst:sshPublicKey"]!.split(" ")[1]!;
        assert.match(checkSshPublicKey(`ssh-rsa ${ed}`) ?? "", /not a ssh-rsa key/);
        assert.match(checkSshPublicKey(`ssh-ed25519 ${ed.slice(0, 40)}`) ?? "", /truncated|not a valid/);
        assert.match(checkSshPublicKey("ssh-ed25519") ?? "", /OpenSSH public key line/);
    });
    test("budget start must be the first of a month; default is this month", () => {
        rejects({ budgetStartDate: "2027-03-17T00:00:00Z" }, "budgetStartDate");
        assert.equal(load({}).budgetStartDate, "2027-03-01T00:00:00Z");
        assert.equal(firstOfMonth(new Date("2027-12-31T23:59:59Z")), "2027-12-01T00:00:00Z");
    });
    test("Ed25519 PEM check", () => {
        assert.equal(checkEd25519Pem(ED25519_PEM), undefined);
        const rsa = crypto.generateKeyPairSync("rsa", { modulusLength: 1024 }).publicKey.export({ type: "spki", format: "pem" }).toString();
        assert.match(checkEd25519Pem(rsa) ?? "", /not an Ed25519/);
        assert.match(checkEd25519Pem("ssh-ed25519 AAAA") ?? "", /PEM/);
    });
    test("Discord URL must be https", () => {
        assert.equal(checkHttpsUrl("https://discord.example/api/webhooks/1/x"), undefined);
        assert.ok(checkHttpsUrl("http://discord.example/api/webhooks/1/x"));
        assert.ok(checkHttpsUrl("not a url"));
    });
});

describe("defaults", () => {
    test("values the issue fixes", async () => {
        const minimal: Record<string, string | undefined> = {
            siteId: undefined, tailscaleApiKey: undefined, tailscaleTags: undefined, homeKubeUrl: undefined,
            homeKubeToken: undefined, cloudKubeUrl: undefined, cloudKubeToken: undefined, agentHs256Secret: undefined,
            nodeJoinScript: undefined,
        };
        const cfg = load(minimal);
        assert.equal(cfg.siteId, "home");
        assert.equal(cfg.maxNodes, 5);
        assert.equal(cfg.pricePerNodeHour, 0.05);
        assert.equal(cfg.vmSize, "Standard_D2s_v3");
        assert.equal(cfg.nodePublicIp, true);
        assert.equal(cfg.allowAsyncOperationPolling, false);
        assert.equal(cfg.allowUpDuringBurst, false);
        assert.equal(cfg.nodeAcceleratedNetworking, false);
        assert.equal(cfg.functionMaxInstances, 40);
        assert.equal(cfg.nodeJoinScript, undefined);
        assert.equal(await valueOf(cfg.settings.get("BURST_PROBE_SCHEDULE")!), "*/30 * * * * *");
        assert.equal(await valueOf(cfg.settings.get("BURST_SITE_ID")!), "home");
        // Optional settings without a value are left out rather than set to "".
        for (const env of ["BURST_TAILSCALE_API_KEY", "BURST_HOME_KUBE_URL", "BURST_CLOUD_KUBE_TOKEN", "BURST_AGENT_HS256_SECRET", "BURST_TAILSCALE_TAGS"]) {
            assert.ok(!cfg.settings.has(env), `${env} omitted when unset`);
        }
    });
    test("secret settings are Pulumi secrets, plain ones are not", async () => {
        const cfg = load({});
        assert.equal(await pulumi.isSecret(cfg.settings.get("DISCORD_WEBHOOK_URL")!), true);
        assert.equal(await pulumi.isSecret(cfg.settings.get("TAILSCALE_WEBHOOK_SECRET")!), true);
        assert.equal(await pulumi.isSecret(cfg.settings.get("BURST_AGENT_ED25519_PUBLIC_KEY")!), true);
        assert.equal(await pulumi.isSecret(cfg.settings.get("BURST_HOME_KUBE_TOKEN")!), true);
        assert.equal(await pulumi.isSecret(cfg.nodeTailscaleAuthKey), true);
        assert.equal(await pulumi.isSecret(cfg.settings.get("BURST_MAX_NODES")!), false);
    });
    test("a secret set without --secret is still treated as a secret", async () => {
        setConfig(BASE_CONFIG, []);
        const cfg = loadConfig(new pulumi.Config("hybrid-burst"), NOW);
        assert.equal(await pulumi.isSecret(cfg.settings.get("DISCORD_WEBHOOK_URL")!), true);
    });
});

// --- OpenSSH public key lines built from real keys (node:crypto), for the ssh key checks.

function sshString(b: Buffer | string): Buffer {
    const body = typeof b === "string" ? Buffer.from(b, "latin1") : b;
    const len = Buffer.alloc(4);
    len.writeUInt32BE(body.length);
    return Buffer.concat([len, body]);
}
/** mpint: big-endian, with a leading zero byte when the top bit is set. */
function sshMpint(b: Buffer): Buffer {
    return sshString(b[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), b]) : b);
}
function sshRsa(bits: number): string {
    const jwk = crypto.generateKeyPairSync("rsa", { modulusLength: bits }).publicKey.export({ format: "jwk" });
    const blob = Buffer.concat([sshString("ssh-rsa"), sshMpint(Buffer.from(jwk.e!, "base64url")), sshMpint(Buffer.from(jwk.n!, "base64url"))]);
    return `ssh-rsa ${blob.toString("base64")} test@example`;
}
function sshEcdsa(size: "256" | "384" | "521"): string {
    const jwk = crypto.generateKeyPairSync("ec", { namedCurve: `P-${size}` }).publicKey.export({ format: "jwk" });
    const point = Buffer.concat([Buffer.from([4]), Buffer.from(jwk.x!, "base64url"), Buffer.from(jwk.y!, "base64url")]);
    const type = `ecdsa-sha2-nistp${size}`;
    const blob = Buffer.concat([sshString(type), sshString(`nistp${size}`), sshString(point)]);
    return `${type} ${blob.toString("base64")} test@example`;
}
