// What the function's managed identity may do in Azure, and why each line is needed.
// Everything is an exact action: no wildcards (a test enforces it).

import { createHash } from "node:crypto";

/**
 * Custom role assigned at the scale set's scope (not the resource group).
 *
 * - read/write: GET the scale set (capacity, etag, provisioningState) and the sparse
 *   `PATCH {"sku":{"capacity":n}}` with If-Match. A sparse body names no other resource
 *   (no subnet, image or identity id), so ARM's linked-access checks ask for nothing more;
 *   re-sending a full model would (e.g. identity → LinkedAuthorizationFailed).
 * - instanceView/read, virtualMachines/read, virtualMachines/instanceView/read: count what
 *   really runs (Spot: sku.capacity is what was asked for, not what runs).
 *
 * Not included on purpose: delete, start/deallocate, simulateEviction (drills use the
 * operator's own credentials), and `Microsoft.Compute/locations/operations/read`, which
 * polling the PATCH's Azure-AsyncOperation URL needs: that URL is not under the scale set,
 * so no role at this scope can grant it. See POLLING_ACTIONS.
 */
export const SCALE_SET_ACTIONS: readonly string[] = [
    "Microsoft.Compute/virtualMachineScaleSets/read",
    "Microsoft.Compute/virtualMachineScaleSets/write",
    "Microsoft.Compute/virtualMachineScaleSets/instanceView/read",
    "Microsoft.Compute/virtualMachineScaleSets/virtualMachines/read",
    "Microsoft.Compute/virtualMachineScaleSets/virtualMachines/instanceView/read",
];

/**
 * Optional (config `allowAsyncOperationPolling: true`): lets the identity read the status
 * of its own long-running operations. ARM checks this above the resource (Azure's docs
 * say at resource-group level), so it is a separate role at the resource group. Off by
 * default: the function is level-triggered and re-reads the scale set instead of polling.
 */
export const POLLING_ACTIONS: readonly string[] = ["Microsoft.Compute/locations/operations/read"];

/*
 * Built-in storage data roles (their ids are the same in every tenant). Who gets which, and
 * where (stack.ts), follows Microsoft's host-storage guidance ("Connecting to host storage with
 * an identity" in the Azure Functions docs) and keeps the three kinds of blobs apart:
 *
 * - host storage (`AzureWebJobsStorage`, its own storage account that holds nothing else): the
 *   function's system-assigned identity gets Storage Blob Data Owner (timer locks, host keys;
 *   the host creates its containers) and Storage Table Data Contributor (the host's diagnostic
 *   events are tables) on that account;
 * - state documents: the same identity gets Storage Blob Data Contributor on the `burst-state`
 *   container only (read, conditional PUT);
 * - deployment package: a separate user-assigned identity, used only as Flex Consumption's
 *   deployment-storage identity, gets Storage Blob Data Contributor on the `app-package`
 *   container only (the platform writes the zip with it on deploy and reads it on start). The
 *   function's own identity has no right on that container, so its code cannot overwrite the
 *   package it runs from with the identity it uses for everything else.
 */
export const STORAGE_BLOB_DATA_OWNER = "b7e6dc6d-f1e8-4753-8033-0f276bb0955b";
export const STORAGE_BLOB_DATA_CONTRIBUTOR = "ba92f5b4-2d11-453d-a403-e96b0029c9fe";
export const STORAGE_TABLE_DATA_CONTRIBUTOR = "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3";

/** Every built-in role the program assigns (the policy tests allow these and no other). */
export const BUILT_IN_ROLES_USED: Readonly<Record<string, string>> = {
    [STORAGE_BLOB_DATA_OWNER]: "Storage Blob Data Owner",
    [STORAGE_BLOB_DATA_CONTRIBUTOR]: "Storage Blob Data Contributor",
    [STORAGE_TABLE_DATA_CONTRIBUTOR]: "Storage Table Data Contributor",
};

/**
 * What the person running `pulumi up` / `pulumi destroy` needs, at the subscription (the
 * resource group is the program's own). Microsoft.Authorization: the program creates a custom
 * role (definition write) and assigns roles (assignment write); destroy deletes both. The rest
 * is one write per kind of resource the program creates, the capacity read before each run,
 * and attaching the deployment identity to the app (a linked-access check on the identity).
 */
export const DEPLOYER_ACTIONS: readonly string[] = [
    "Microsoft.Authorization/roleDefinitions/write",
    "Microsoft.Authorization/roleDefinitions/delete",
    "Microsoft.Authorization/roleAssignments/write",
    "Microsoft.Authorization/roleAssignments/delete",
    "Microsoft.Resources/subscriptions/resourceGroups/write",
    "Microsoft.Storage/storageAccounts/write",
    "Microsoft.Network/virtualNetworks/write",
    "Microsoft.Network/networkSecurityGroups/write",
    "Microsoft.Compute/virtualMachineScaleSets/write",
    "Microsoft.Compute/virtualMachineScaleSets/read",
    "Microsoft.ManagedIdentity/userAssignedIdentities/write",
    "Microsoft.ManagedIdentity/userAssignedIdentities/assign/action",
    "Microsoft.Web/serverfarms/write",
    "Microsoft.Web/sites/write",
    "Microsoft.Consumption/budgets/write",
];

/**
 * The control-plane permissions of the built-in roles a deployer might hold, as Azure defines
 * them (Azure docs, "Azure built-in roles": Privileged category).
 */
export const BUILT_IN_DEPLOYER_ROLES: Readonly<Record<string, { actions: readonly string[]; notActions: readonly string[] }>> = {
    Owner: { actions: ["*"], notActions: [] },
    Contributor: {
        actions: ["*"],
        notActions: [
            "Microsoft.Authorization/*/Delete",
            "Microsoft.Authorization/*/Write",
            "Microsoft.Authorization/elevateAccess/Action",
            "Microsoft.Blueprint/blueprintAssignments/write",
            "Microsoft.Blueprint/blueprintAssignments/delete",
            "Microsoft.Compute/galleries/share/action",
            "Microsoft.Purview/consents/write",
            "Microsoft.Purview/consents/delete",
            "Microsoft.Resources/deploymentStacks/manageDenySetting/action",
        ],
    },
    "User Access Administrator": { actions: ["*/read", "Microsoft.Authorization/*", "Microsoft.Support/*"], notActions: [] },
    "Role Based Access Control Administrator": {
        actions: ["Microsoft.Authorization/roleAssignments/write", "Microsoft.Authorization/roleAssignments/delete", "*/read", "Microsoft.Support/*"],
        notActions: [],
    },
};

/** ARM's action matching: `*` matches any run of characters, case-insensitively. */
export function actionMatches(pattern: string, action: string): boolean {
    const re = new RegExp("^" + pattern.split("*").map((p) => p.replace(/[.+?^${}()|[\]\\/]/g, "\\$&")).join(".*") + "$", "i");
    return re.test(action);
}

/** Whether one of the roles grants the action (a role's notActions only subtract from that role). */
export function rolesGrant(roles: readonly string[], action: string): boolean {
    return roles.some((name) => {
        const r = BUILT_IN_DEPLOYER_ROLES[name];
        if (!r) throw new Error(`unknown built-in role ${name}`);
        return r.actions.some((a) => actionMatches(a, action)) && !r.notActions.some((n) => actionMatches(n, action));
    });
}

export function builtInRoleId(subscriptionId: string, roleGuid: string): string {
    return `/subscriptions/${subscriptionId}/providers/Microsoft.Authorization/roleDefinitions/${roleGuid}`;
}

/**
 * A name-based GUID (RFC 4122 version 5 layout over SHA-1), like ARM templates' guid():
 * the same parts always give the same GUID, so role definitions and assignments get stable,
 * tenant-unique names without a random provider and without depending on autonaming.
 */
export function stableGuid(...parts: string[]): string {
    const h = createHash("sha1").update(parts.join("\u0000")).digest();
    h[6] = (h[6]! & 0x0f) | 0x50; // version 5
    h[8] = (h[8]! & 0x3f) | 0x80; // RFC 4122 variant
    const x = h.subarray(0, 16).toString("hex");
    return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20, 32)}`;
}
