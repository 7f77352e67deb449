// Generic policy over every resource the program declares: rules that must hold for any
// resource added later, not just the ones that exist today.

import { before, test } from "node:test";
import assert from "node:assert/strict";

import { BASE_CONFIG, PRINCIPAL, SECRET_KEYS, UAMI_PRINCIPAL, type Built, type Recorded, runProgram } from "./harness";
import {
    BUILT_IN_QUEUE_ROLES,
    BUILT_IN_ROLES_USED,
    DEPLOYER_ACTIONS,
    QUEUE_OPERATIONS,
    STORAGE_BLOB_DATA_CONTRIBUTOR,
    STORAGE_BLOB_DATA_OWNER,
    STORAGE_TABLE_DATA_CONTRIBUTOR,
    WAKE_POISON_QUEUE_OPERATIONS,
    WAKE_QUEUE_ACTIONS,
    WAKE_QUEUE_DATA_ACTIONS,
    WAKE_QUEUE_OPERATIONS,
} from "../src/roles";
import { HOST_STORAGE_SETTING } from "../src/settings";

let built: Built;
before(async () => {
    built = await runProgram(BASE_CONFIG);
});

const ALLOWED_TYPES = new Set([
    "azure-native:resources:ResourceGroup",
    "azure-native:storage:StorageAccount",
    "azure-native:storage:BlobContainer",
    "azure-native:storage:Queue",
    "azure-native:network:VirtualNetwork",
    "azure-native:network:Subnet",
    "azure-native:network:NetworkSecurityGroup",
    "azure-native:compute:VirtualMachineScaleSet",
    "azure-native:managedidentity:UserAssignedIdentity",
    "azure-native:web:AppServicePlan",
    "azure-native:web:WebApp",
    "azure-native:web:WebAppFtpAllowed",
    "azure-native:web:WebAppScmAllowed",
    "azure-native:authorization:RoleDefinition",
    "azure-native:authorization:RoleAssignment",
    "azure-native:consumption:Budget",
    "azure-native:operationalinsights:Workspace",
    "azure-native:applicationinsights:Component",
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
        const builtIn = /\/roleDefinitions\/([0-9a-f-]{36})$/.exec(r.inputs.roleDefinitionId)?.[1];
        assert.ok(createdRoles.has(r.inputs.roleDefinitionId) || (builtIn !== undefined && builtIn in BUILT_IN_ROLES_USED), `${r.name} uses an expected role`);
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

// --- storage data rights: least privilege -------------------------------------------------
// Resolved from what the program declares, not from names: the containers the app uses (the
// deployment package from functionAppConfig, the state from BURST_STATE_URL), the host's
// account (AzureWebJobsStorage__accountName), and who gets which data role where.

const STORAGE_DATA_ROLES = new Set([STORAGE_BLOB_DATA_OWNER, STORAGE_BLOB_DATA_CONTRIBUTOR, STORAGE_TABLE_DATA_CONTRIBUTOR]);
const roleGuid = (a: Recorded) => /\/roleDefinitions\/([^/]+)$/.exec(a.inputs.roleDefinitionId)?.[1] ?? "";
const assignments = () => built.resources.filter((x) => x.type === "azure-native:authorization:RoleAssignment");
const ofKind = (t: string) => built.resources.filter((x) => x.type === `azure-native:${t}`);
/** scope is the resource itself or one of its ancestors (ARM scopes are path prefixes). */
const covers = (scope: string, id: string) => id === scope || id.startsWith(scope.replace(/\/$/, "") + "/");

function containerByUrl(url: string): Recorded {
    const u = new URL(url);
    const account = ofKind("storage:StorageAccount").find((a) => u.hostname === `${a.name.replace(/[^a-z0-9]/g, "")}abcd1234.blob.core.windows.net`);
    assert.ok(account, `no declared storage account serves ${url}`);
    const c = ofKind("storage:BlobContainer").find((x) => x.id.startsWith(account.id + "/") && x.inputs.containerName === u.pathname.slice(1));
    assert.ok(c, `no declared container behind ${url}`);
    return c;
}
const app = () => ofKind("web:WebApp")[0]!;
const setting = (name: string) => (app().inputs.siteConfig.appSettings as { name: string; value: string }[]).find((s) => s.name === name)?.value;
const packageContainer = () => containerByUrl(app().inputs.functionAppConfig.deployment.storage.value);
const stateContainer = () => containerByUrl(setting("BURST_STATE_URL")!);
const hostAccount = () => {
    const a = ofKind("storage:StorageAccount").find((x) => `${x.name.replace(/[^a-z0-9]/g, "")}abcd1234` === setting(HOST_STORAGE_SETTING));
    assert.ok(a, "AzureWebJobsStorage__accountName names a declared account");
    return a;
};
const deployIdentity = () => {
    const auth = app().inputs.functionAppConfig.deployment.storage.authentication;
    assert.equal(auth.type, "UserAssignedIdentity", "the package is read/written with its own identity");
    const id = ofKind("managedidentity:UserAssignedIdentity").find((x) => x.id === auth.userAssignedIdentityResourceId);
    assert.ok(id, "the deployment identity is declared");
    return id;
};

test("storage: the function's own identity has no data right that reaches the deployment package", () => {
    const pkg = packageContainer().id;
    const customDataRoles = new Set(
        built.resources
            .filter((x) => x.type === "azure-native:authorization:RoleDefinition")
            .filter((x) => (x.inputs.permissions as { dataActions?: string[] }[]).some((p) => (p.dataActions ?? []).length > 0))
            .map((x) => x.id),
    );
    for (const a of assignments()) {
        if (a.inputs.principalId !== PRINCIPAL || !covers(a.inputs.scope, pkg)) continue;
        assert.ok(
            !STORAGE_DATA_ROLES.has(roleGuid(a)) && !customDataRoles.has(a.inputs.roleDefinitionId),
            `${a.name}: ${a.inputs.roleDefinitionId} at ${a.inputs.scope} lets the function write its own package`,
        );
    }
});

test("storage: the deployment identity can reach the package container and nothing else", () => {
    const id = deployIdentity();
    const pkg = packageContainer();
    // The mocks give every user-assigned identity this principal id (the real one is Azure's).
    const mine = assignments().filter((a) => a.inputs.principalId === UAMI_PRINCIPAL);
    assert.deepEqual(
        mine.map((a) => [a.inputs.scope, roleGuid(a)]),
        [[pkg.id, STORAGE_BLOB_DATA_CONTRIBUTOR]],
        `${id.name}: exactly Blob Data Contributor on the package container`,
    );
});

test("storage: the state documents, read and written by the function, on their container only", () => {
    const state = stateContainer();
    const onState = assignments().filter((a) => a.inputs.principalId === PRINCIPAL && STORAGE_DATA_ROLES.has(roleGuid(a)) && covers(a.inputs.scope, state.id));
    assert.deepEqual(onState.map((a) => [a.inputs.scope, roleGuid(a)]), [[state.id, STORAGE_BLOB_DATA_CONTRIBUTOR]]);
});

test("storage: the host's account gets what Microsoft's host-storage guidance asks for, and holds nothing else", () => {
    const host = hostAccount();
    assert.notEqual(host.id, containerByUrl(setting("BURST_STATE_URL")!).id.split("/blobServices/")[0], "host storage is not the state/package account");
    assert.deepEqual(ofKind("storage:BlobContainer").filter((c) => c.id.startsWith(host.id + "/")), [], "no containers of ours in the host's account");
    const onHost = assignments().filter((a) => a.inputs.principalId === PRINCIPAL && a.inputs.scope === host.id).map(roleGuid).sort();
    // Blob Data Owner: timer locks, host keys, container creation; Table Data Contributor: diagnostic events.
    assert.deepEqual(onHost, [STORAGE_BLOB_DATA_OWNER, STORAGE_TABLE_DATA_CONTRIBUTOR].sort());
});

test("storage: data roles only on a container, or on an account that holds none of our containers", () => {
    const containers = ofKind("storage:BlobContainer");
    for (const a of assignments().filter((x) => STORAGE_DATA_ROLES.has(roleGuid(x)))) {
        const isContainer = containers.some((c) => c.id === a.inputs.scope);
        const account = ofKind("storage:StorageAccount").find((s) => s.id === a.inputs.scope);
        assert.ok(isContainer || account, `${a.name}: scope ${a.inputs.scope} is neither a container nor a storage account`);
        if (account) {
            assert.deepEqual(containers.filter((c) => c.id.startsWith(account.id + "/")).map((c) => c.name), [], `${a.name}: account-wide data role on an account holding containers`);
        }
        if (roleGuid(a) === STORAGE_BLOB_DATA_OWNER) assert.ok(account, `${a.name}: Blob Data Owner only for the host's own account`);
    }
});

// --- queue data rights: least privilege ---------------------------------------------------
// Resolved from what the program declares: the trigger's queue is BURST_WAKE_QUEUE on the
// account of AzureWebJobsStorage__accountName, the host's poison queue is `<queue>-poison`,
// the sender's is BURST_WAKE_QUEUE_URL. Rights are what the assigned roles' definitions say
// (built-in ones from BUILT_IN_QUEUE_ROLES, custom ones from the declared definitions).

const QUEUE_PREFIX = "Microsoft.Storage/storageAccounts/queueServices/";
const queueByName = (account: Recorded, name: string) => {
    const q = ofKind("storage:Queue").find((x) => x.id === `${account.id}/queueServices/default/queues/${name}`);
    assert.ok(q, `no declared queue ${name} in ${account.name}`);
    return q;
};
/** The actions and data actions a role assignment grants (exact names; wildcards are banned above). */
function granted(a: Recorded): string[] {
    const custom = ofKind("authorization:RoleDefinition").find((d) => d.id === a.inputs.roleDefinitionId);
    if (custom) return (custom.inputs.permissions as { actions?: string[]; dataActions?: string[] }[]).flatMap((p) => [...(p.actions ?? []), ...(p.dataActions ?? [])]);
    const b = BUILT_IN_QUEUE_ROLES[roleGuid(a)];
    return b ? [...b.actions, ...b.dataActions] : [];
}
/** Everything the function's identity may do on a queue (assignments at it or above it). */
const rightsOn = (queueId: string) =>
    new Set(assignments().filter((a) => a.inputs.principalId === PRINCIPAL && covers(a.inputs.scope, queueId)).flatMap(granted).filter((x) => x.startsWith(QUEUE_PREFIX)));
const allows = (rights: Set<string>, op: string) => {
    const alternatives = QUEUE_OPERATIONS[op];
    assert.ok(alternatives, `unknown queue operation ${op}`);
    return alternatives.some((need) => need.every((x) => rights.has(x)));
};
/** A right is needed if it is part of some way to do one of the operations. */
const neededBy = (ops: readonly string[]) => new Set(ops.flatMap((op) => QUEUE_OPERATIONS[op]!.flat()));

test("queues: every queue right is granted at one queue's scope, never account-wide", () => {
    const queues = new Set(ofKind("storage:Queue").map((q) => q.id));
    for (const a of assignments()) {
        if (!granted(a).some((x) => x.startsWith(QUEUE_PREFIX))) continue;
        assert.ok(queues.has(a.inputs.scope), `${a.name}: queue rights at ${a.inputs.scope}, not at a declared queue`);
    }
});

test("queues: the function's identity can do what the trigger, the sender and the poison move need, and nothing more", () => {
    const host = hostAccount();
    const wake = queueByName(host, setting("BURST_WAKE_QUEUE")!);
    const poison = queueByName(host, `${setting("BURST_WAKE_QUEUE")}-poison`);
    // The sender's URL names the same queue.
    const u = new URL(setting("BURST_WAKE_QUEUE_URL")!);
    assert.equal(u.hostname, `${setting(HOST_STORAGE_SETTING)}.queue.core.windows.net`);
    assert.equal(queueByName(host, u.pathname.slice(1)).id, wake.id);

    const onWake = rightsOn(wake.id);
    for (const op of WAKE_QUEUE_OPERATIONS) assert.ok(allows(onWake, op), `wake queue: ${op} is not granted`);
    const extraWake = [...onWake].filter((x) => !neededBy(WAKE_QUEUE_OPERATIONS).has(x));
    assert.deepEqual(extraWake, [], "wake queue: rights no operation needs");
    for (const x of ["queues/write", "queues/delete", "queues/messages/delete"]) assert.ok(!onWake.has(QUEUE_PREFIX + x), `wake queue: ${x}`);

    const onPoison = rightsOn(poison.id);
    for (const op of WAKE_POISON_QUEUE_OPERATIONS) assert.ok(allows(onPoison, op), `poison queue: ${op} is not granted`);
    assert.deepEqual([...onPoison], [`${QUEUE_PREFIX}queues/messages/add/action`], "poison queue: add messages only");
});

test("queues: why a custom role (the built-ins Functions' docs suggest cannot release a message; Contributor can delete the queue)", () => {
    const union = (...guids: string[]) => new Set(guids.flatMap((g) => [...BUILT_IN_QUEUE_ROLES[g]!.actions, ...BUILT_IN_QUEUE_ROLES[g]!.dataActions]));
    const byName = (n: string) => Object.entries(BUILT_IN_QUEUE_ROLES).find(([, r]) => r.name === n)![0];
    const suggested = union(byName("Storage Queue Data Reader"), byName("Storage Queue Data Message Processor"), byName("Storage Queue Data Message Sender"));
    assert.deepEqual(WAKE_QUEUE_OPERATIONS.filter((op) => !allows(suggested, op)), ["Update Message"]);
    const contributor = union(byName("Storage Queue Data Contributor"));
    assert.ok(WAKE_QUEUE_OPERATIONS.every((op) => allows(contributor, op)));
    // What Contributor would add to the custom role: deleting the queue, writing its metadata, clearing it.
    const custom = new Set([...WAKE_QUEUE_ACTIONS, ...WAKE_QUEUE_DATA_ACTIONS]);
    assert.deepEqual(
        [...contributor].filter((x) => !custom.has(x)).sort(),
        [`${QUEUE_PREFIX}queues/delete`, `${QUEUE_PREFIX}queues/messages/delete`, `${QUEUE_PREFIX}queues/write`].sort(),
    );
});

// --- the deployer -------------------------------------------------------------------------

/** The ARM write each declared resource type needs (what DEPLOYER_ACTIONS must hold). */
const WRITE_ACTION: Readonly<Record<string, string>> = {
    "azure-native:resources:ResourceGroup": "Microsoft.Resources/subscriptions/resourceGroups/write",
    "azure-native:storage:StorageAccount": "Microsoft.Storage/storageAccounts/write",
    "azure-native:storage:BlobContainer": "Microsoft.Storage/storageAccounts/blobServices/containers/write",
    "azure-native:storage:Queue": "Microsoft.Storage/storageAccounts/queueServices/queues/write",
    "azure-native:network:VirtualNetwork": "Microsoft.Network/virtualNetworks/write",
    "azure-native:network:Subnet": "Microsoft.Network/virtualNetworks/subnets/write",
    "azure-native:network:NetworkSecurityGroup": "Microsoft.Network/networkSecurityGroups/write",
    "azure-native:compute:VirtualMachineScaleSet": "Microsoft.Compute/virtualMachineScaleSets/write",
    "azure-native:managedidentity:UserAssignedIdentity": "Microsoft.ManagedIdentity/userAssignedIdentities/write",
    "azure-native:web:AppServicePlan": "Microsoft.Web/serverfarms/write",
    "azure-native:web:WebApp": "Microsoft.Web/sites/write",
    "azure-native:web:WebAppFtpAllowed": "Microsoft.Web/sites/basicPublishingCredentialsPolicies/write",
    "azure-native:web:WebAppScmAllowed": "Microsoft.Web/sites/basicPublishingCredentialsPolicies/write",
    "azure-native:authorization:RoleDefinition": "Microsoft.Authorization/roleDefinitions/write",
    "azure-native:authorization:RoleAssignment": "Microsoft.Authorization/roleAssignments/write",
    "azure-native:consumption:Budget": "Microsoft.Consumption/budgets/write",
    "azure-native:operationalinsights:Workspace": "Microsoft.OperationalInsights/workspaces/write",
    "azure-native:applicationinsights:Component": "Microsoft.Insights/components/write",
};

test("the deployer's actions cover every kind of resource the program declares", () => {
    for (const t of new Set(built.resources.map((r) => r.type))) {
        const w = WRITE_ACTION[t];
        assert.ok(w, `${t}: which ARM write creates it? (add it here and to DEPLOYER_ACTIONS)`);
        assert.ok(DEPLOYER_ACTIONS.includes(w), `DEPLOYER_ACTIONS lacks ${w} (${t})`);
    }
});
