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

/**
 * Built-in role for the Functions host's identity-based `AzureWebJobsStorage` (timer
 * leases, host keys) and the state documents. Ids are fixed across all tenants.
 */
export const STORAGE_BLOB_DATA_OWNER = "b7e6dc6d-f1e8-4753-8033-0f276bb0955b";

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
