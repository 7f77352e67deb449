// Generic policy over every resource the program declares: rules that must hold for any
// resource added later, not just the ones that exist today.

import { before, test } from "node:test";
import assert from "node:assert/strict";

import { BASE_CONFIG, SECRET_KEYS, type Built, runProgram } from "./harness";

let built: Built;
before(async () => {
    built = await runProgram(BASE_CONFIG);
});

const ALLOWED_TYPES = new Set([
    "azure-native:resources:ResourceGroup",
    "azure-native:storage:StorageAccount",
    "azure-native:storage:BlobContainer",
    "azure-native:network:VirtualNetwork",
    "azure-native:network:Subnet",
    "azure-native:network:NetworkSecurityGroup",
    "azure-native:compute:VirtualMachineScaleSet",
    "azure-native:web:AppServicePlan",
    "azure-native:web:WebApp",
    "azure-native:web:WebAppFtpAllowed",
    "azure-native:web:WebAppScmAllowed",
    "azure-native:authorization:RoleDefinition",
    "azure-native:authorization:RoleAssignment",
    "azure-native:consumption:Budget",
]);

/** Every [path, value] pair in a nested input object. */
function* walk(v: unknown, path = ""): Generator<[string, unknown]> {
    yield [path, v];
    if (v !== null && typeof v === "object") {
        for (const [k, x] of Object.entries(v as Record<string, unknown>)) yield* walk(x, path ? `${path}.${k}` : k);
    }
}
const leafKey = (path: string) => path.split(".").pop() ?? "";

test("only allow-listed resource types", () => {
    for (const r of built.resources) assert.ok(ALLOWED_TYPES.has(r.type), `${r.type} (${r.name}) is not allow-listed`);
    assert.ok(built.resources.length >= ALLOWED_TYPES.size, "every allow-listed type is exercised");
});

test("roles: no wildcard actions, nothing but exact operations", () => {
    for (const r of built.resources.filter((x) => x.type === "azure-native:authorization:RoleDefinition")) {
        for (const p of r.inputs.permissions as Record<string, string[]>[]) {
            for (const list of ["actions", "notActions", "dataActions", "notDataActions"]) {
                for (const a of p[list] ?? []) {
                    assert.ok(!a.includes("*"), `${r.name}: wildcard in ${list}: ${a}`);
                    assert.match(a, /^Microsoft\.[A-Za-z]+\/[A-Za-z/]+$/, `${r.name}: ${a}`);
                }
            }
        }
    }
});

test("role assignments: a resource scope, a service principal, a role we created or a pinned built-in", () => {
    const createdRoles = new Set(built.resources.filter((x) => x.type === "azure-native:authorization:RoleDefinition").map((x) => x.id));
    for (const r of built.resources.filter((x) => x.type === "azure-native:authorization:RoleAssignment")) {
        assert.match(r.inputs.scope, /^\/subscriptions\/[^/]+\/resourceGroups\/[^/]+\/providers\/.+/, `${r.name} is scoped to one resource`);
        assert.equal(r.inputs.principalType, "ServicePrincipal");
        assert.ok(
            createdRoles.has(r.inputs.roleDefinitionId) || /\/roleDefinitions\/b7e6dc6d-f1e8-4753-8033-0f276bb0955b$/.test(r.inputs.roleDefinitionId),
            `${r.name} uses an expected role`,
        );
    }
});

test("HTTPS and TLS 1.2+ wherever a resource has the knob", () => {
    for (const r of built.resources) {
        for (const [path, v] of walk(r.inputs)) {
            const k = leafKey(path);
            if (k === "httpsOnly" || k === "enableHttpsTrafficOnly") assert.equal(v, true, `${r.name}.${path}`);
            if (k === "minTlsVersion" || k === "scmMinTlsVersion") assert.ok(v === "1.2" || v === "1.3", `${r.name}.${path} = ${v}`);
            if (k === "minimumTlsVersion") assert.ok(v === "TLS1_2" || v === "TLS1_3", `${r.name}.${path} = ${v}`);
            if (k === "ftpsState") assert.equal(v, "Disabled", `${r.name}.${path}`);
            if (typeof v === "string" && /^http:\/\//.test(v)) assert.fail(`${r.name}.${path} is a plain-http URL: ${v}`);
        }
        if (r.type === "azure-native:storage:StorageAccount") {
            assert.equal(r.inputs.enableHttpsTrafficOnly, true);
            assert.ok(r.inputs.minimumTlsVersion);
        }
        if (r.type === "azure-native:web:WebApp") {
            assert.equal(r.inputs.httpsOnly, true);
            assert.ok(r.inputs.siteConfig?.minTlsVersion);
        }
    }
});

test("no public access: blobs private, no inbound from the internet", () => {
    for (const r of built.resources) {
        if (r.type === "azure-native:storage:StorageAccount") assert.equal(r.inputs.allowBlobPublicAccess, false, r.name);
        if (r.type === "azure-native:storage:BlobContainer") assert.equal(r.inputs.publicAccess, "None", r.name);
        if (r.type === "azure-native:network:NetworkSecurityGroup") {
            for (const rule of r.inputs.securityRules ?? []) {
                if (rule.direction === "Inbound" && rule.access === "Allow") {
                    const src = [rule.sourceAddressPrefix, ...(rule.sourceAddressPrefixes ?? [])];
                    assert.ok(!src.some((s: string) => ["*", "Internet", "0.0.0.0/0", "Any"].includes(s)), `${r.name}: ${rule.name} allows the internet in`);
                }
            }
        }
        if (r.type === "azure-native:network:Subnet") assert.ok(r.inputs.networkSecurityGroup?.id, `${r.name} has an NSG`);
    }
    // Public IPs on nodes only where their subnet's NSG keeps the internet out.
    const vmss = built.resources.filter((x) => x.type === "azure-native:compute:VirtualMachineScaleSet");
    for (const v of vmss) {
        for (const nic of v.inputs.virtualMachineProfile.networkProfile.networkInterfaceConfigurations) {
            for (const ip of nic.ipConfigurations) {
                if (!ip.publicIPAddressConfiguration) continue;
                const subnet = built.resources.find((x) => x.id === ip.subnet.id);
                assert.ok(subnet?.inputs.networkSecurityGroup?.id, `${v.name}: public IP without an NSG on its subnet`);
            }
        }
    }
});

test("no password logins, no account keys", () => {
    for (const r of built.resources) {
        for (const [path, v] of walk(r.inputs)) {
            const k = leafKey(path).toLowerCase();
            if (k.endsWith("password")) assert.equal(v, undefined, `${r.name}.${path} sets a password`);
            if (k === "disablepasswordauthentication") assert.equal(v, true, `${r.name}.${path}`);
            if (typeof v === "string") assert.ok(!/AccountKey=|SharedAccessSignature=|sig=/.test(v), `${r.name}.${path} embeds a storage key or SAS`);
        }
        if (r.type === "azure-native:storage:StorageAccount") assert.equal(r.inputs.allowSharedKeyAccess, false, r.name);
        if (r.type === "azure-native:compute:VirtualMachineScaleSet") {
            assert.equal(r.inputs.virtualMachineProfile.osProfile.linuxConfiguration?.disablePasswordAuthentication, true);
        }
    }
    const apps = built.resources.filter((x) => x.type === "azure-native:web:WebApp").map((x) => x.inputs.name ?? x.name);
    for (const kind of ["azure-native:web:WebAppFtpAllowed", "azure-native:web:WebAppScmAllowed"]) {
        const off = built.resources.filter((x) => x.type === kind && x.inputs.allow === false).map((x) => x.inputs.name);
        for (const app of apps) assert.ok(off.includes(app), `${kind} allow=false for ${app}`);
    }
});

test("secret config values only travel inside secret inputs", () => {
    const secrets = SECRET_KEYS.map((k) => BASE_CONFIG[k]).filter((v): v is string => v !== undefined);
    for (const r of built.resources) {
        const text = JSON.stringify(r.inputs);
        for (const s of secrets) {
            // JSON escapes newlines, so look for the escaped form of the value.
            if (text.includes(JSON.stringify(s).slice(1, -1))) {
                assert.ok(r.hasSecret, `${r.type} ${r.name} carries a secret value in a non-secret input`);
            }
        }
    }
    // customData is base64: decode and check too.
    for (const v of built.resources.filter((x) => x.type === "azure-native:compute:VirtualMachineScaleSet")) {
        const cloudInit = Buffer.from(v.inputs.virtualMachineProfile.osProfile.customData, "base64").toString("utf8");
        assert.ok(cloudInit.includes(BASE_CONFIG["hybrid-burst:nodeTailscaleAuthKey"]!));
        assert.ok(v.hasSecret);
    }
});

test("every taggable resource carries the project tags", () => {
    for (const r of built.resources) {
        if (!("location" in r.inputs)) continue; // tracked (taggable) resources have a location
        assert.equal(r.inputs.tags?.project, "hybrid-burst", `${r.type} ${r.name}`);
        assert.equal(r.inputs.tags?.["hybrid-burst-site"], "home", `${r.type} ${r.name}`);
    }
});
