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
export const STORAGE_QUEUE_DATA_MESSAGE_SENDER = "c6a89b2d-59bc-44d0-9896-0f6e12d7b80a";

const QUEUE = "Microsoft.Storage/storageAccounts/queueServices/queues";

/**
 * Azure's built-in queue data roles (Azure docs, "Azure built-in roles": Storage), for the
 * record and for the tests: the program assigns only the Message Sender.
 */
export const BUILT_IN_QUEUE_ROLES: Readonly<Record<string, { name: string; actions: readonly string[]; dataActions: readonly string[] }>> = {
    "19e7f393-937e-4f77-808e-94535e297925": {
        name: "Storage Queue Data Reader",
        actions: [`${QUEUE}/read`],
        dataActions: [`${QUEUE}/messages/read`],
    },
    "8a0f0c08-91a1-4084-bc3d-661d67233fed": {
        name: "Storage Queue Data Message Processor",
        actions: [],
        dataActions: [`${QUEUE}/messages/read`, `${QUEUE}/messages/process/action`],
    },
    [STORAGE_QUEUE_DATA_MESSAGE_SENDER]: {
        name: "Storage Queue Data Message Sender",
        actions: [],
        dataActions: [`${QUEUE}/messages/add/action`],
    },
    "974c5e8b-45b9-4653-ba55-5f855dd0fb88": {
        name: "Storage Queue Data Contributor",
        actions: [`${QUEUE}/delete`, `${QUEUE}/read`, `${QUEUE}/write`],
        dataActions: [
            `${QUEUE}/messages/delete`,
            `${QUEUE}/messages/read`,
            `${QUEUE}/messages/write`,
            `${QUEUE}/messages/process/action`,
        ],
    },
};

/**
 * What each queue operation asks for, as alternatives (any one set suffices) (Azure Storage
 * REST docs, "Authorize with Microsoft Entra ID", permissions for Queue service operations).
 * Put Message takes messages/write too, which is how Storage Queue Data Contributor sends.
 */
export const QUEUE_OPERATIONS: Readonly<Record<string, readonly (readonly string[])[]>> = {
    "Get Queue Metadata": [[`${QUEUE}/read`]],
    "Peek Messages": [[`${QUEUE}/messages/read`]],
    "Get Messages": [[`${QUEUE}/messages/process/action`], [`${QUEUE}/messages/delete`, `${QUEUE}/messages/read`]],
    "Delete Message": [[`${QUEUE}/messages/process/action`], [`${QUEUE}/messages/delete`]],
    "Update Message": [[`${QUEUE}/messages/write`]],
    "Put Message": [[`${QUEUE}/messages/add/action`], [`${QUEUE}/messages/write`]],
};

/**
 * The operations the function app performs on each queue: the Functions host's queue trigger
 * (poll, dequeue, delete after success, release a failure with the host.json
 * `visibilityTimeout` and renew visibility while an invocation runs, both Update Message;
 * queue length and oldest message for scaling), the handler's send, and the host's move of a
 * message to the poison queue after `maxDequeueCount` failures (Put Message there, then Delete
 * Message on the wake queue).
 */
export const WAKE_QUEUE_OPERATIONS: readonly string[] = [
    "Get Queue Metadata",
    "Peek Messages",
    "Get Messages",
    "Delete Message",
    "Update Message",
    "Put Message",
];
export const WAKE_POISON_QUEUE_OPERATIONS: readonly string[] = ["Put Message"];

/**
 * Custom role assigned to the function's identity at the wake queue's scope (`burst-wake` in
 * the host's account; the `wake` function's queue trigger reads it through the identity-based
 * `AzureWebJobsStorage` connection, and the handler sends wake-ups to it).
 *
 * - queues/read (action): Get Queue Metadata (the SDKs' "get properties"), the approximate
 *   queue length the trigger's scaling reads;
 * - messages/read: Peek Messages (the scaler looks at the oldest message);
 * - messages/process/action: Get Messages (dequeue) and Delete Message (after success, and
 *   after the copy to the poison queue);
 * - messages/write: Update Message. The host releases a failed message with the host.json
 *   `visibilityTimeout` (the handler answers 500 to be retried) and renews the visibility of
 *   a message while its invocation runs. Without it a failed wake-up would come back only
 *   when the dequeue's own visibility timeout runs out (minutes, not seconds);
 * - messages/add/action: Put Message, the handler's send (`BURST_WAKE_QUEUE_URL`). Covered by
 *   messages/write already (Put Message takes either); listed because it is the sender's need.
 *
 * Why not built-in roles: Functions' docs recommend Storage Queue Data Reader + Message
 * Processor for a queue trigger and Message Sender for a sender, but none of them grants
 * messages/write (Update Message), so retries would wait for the dequeue timeout; the only
 * built-in that does, Storage Queue Data Contributor, also grants deleting the queue, writing
 * its metadata and clearing it (queues/write, queues/delete, messages/delete): more than is
 * needed. Not included on purpose: messages/delete (Clear Messages; Delete Message goes through
 * process/action) and anything on queues other than this one.
 */
export const WAKE_QUEUE_ACTIONS: readonly string[] = ["Microsoft.Storage/storageAccounts/queueServices/queues/read"];
export const WAKE_QUEUE_DATA_ACTIONS: readonly string[] = [
    "Microsoft.Storage/storageAccounts/queueServices/queues/messages/read",
    "Microsoft.Storage/storageAccounts/queueServices/queues/messages/process/action",
    "Microsoft.Storage/storageAccounts/queueServices/queues/messages/write",
    "Microsoft.Storage/storageAccounts/queueServices/queues/messages/add/action",
];

/*
 * The poison queue (`burst-wake-poison`): after `maxDequeueCount` failures the host puts a copy
 * of the message there (Put Message, then Delete Message on the wake queue). Put Message is all
 * it needs there, as the queue exists (the program creates it; otherwise the host would create
 * it and need queues/write): Storage Queue Data Message Sender, at the poison queue's scope.
 * Nobody of ours reads it; an operator inspects it with their own credentials.
 */

/** Every built-in role the program assigns (the policy tests allow these and no other). */
export const BUILT_IN_ROLES_USED: Readonly<Record<string, string>> = {
    [STORAGE_BLOB_DATA_OWNER]: "Storage Blob Data Owner",
    [STORAGE_BLOB_DATA_CONTRIBUTOR]: "Storage Blob Data Contributor",
    [STORAGE_TABLE_DATA_CONTRIBUTOR]: "Storage Table Data Contributor",
    [STORAGE_QUEUE_DATA_MESSAGE_SENDER]: "Storage Queue Data Message Sender",
};

/**
 * What the person running `pulumi up` / `pulumi destroy` needs, at the subscription (the
 * resource group is the program's own). Microsoft.Authorization: the program creates custom
 * roles (definition write: the scale set operator, the wake queue worker) and assigns roles
 * (assignment write, also at the two queues' scopes); destroy deletes both. The rest is one
 * write per kind of resource the program creates (the queues are `queueServices/queues`
 * children of the host's account), the capacity read before each run, and attaching the
 * deployment identity to the app (a linked-access check on the identity).
 */
export const DEPLOYER_ACTIONS: readonly string[] = [
    "Microsoft.Authorization/roleDefinitions/write",
    "Microsoft.Authorization/roleDefinitions/delete",
    "Microsoft.Authorization/roleAssignments/write",
    "Microsoft.Authorization/roleAssignments/delete",
    "Microsoft.Resources/subscriptions/resourceGroups/write",
    "Microsoft.Storage/storageAccounts/write",
    "Microsoft.Storage/storageAccounts/blobServices/containers/write",
    "Microsoft.Storage/storageAccounts/queueServices/queues/write",
    "Microsoft.Network/virtualNetworks/write",
    "Microsoft.Network/virtualNetworks/subnets/write",
    "Microsoft.Network/networkSecurityGroups/write",
    "Microsoft.Compute/virtualMachineScaleSets/write",
    "Microsoft.Compute/virtualMachineScaleSets/read",
    "Microsoft.ManagedIdentity/userAssignedIdentities/write",
    "Microsoft.ManagedIdentity/userAssignedIdentities/assign/action",
    "Microsoft.Web/serverfarms/write",
    "Microsoft.Web/sites/write",
    "Microsoft.Web/sites/basicPublishingCredentialsPolicies/write",
    "Microsoft.Consumption/budgets/write",
    "Microsoft.OperationalInsights/workspaces/write",
    "Microsoft.Insights/components/write",
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
