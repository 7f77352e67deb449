// The scale set's capacity belongs to the function, never to Pulumi.
//
// Why not `ignoreChanges: ["sku.capacity"]` (what this program used before): with ignoreChanges
// Pulumi keeps the capacity it last sent (0, from creation) in its state and puts that stale
// value back into the request whenever it updates any *other* property of the scale set
// (azure-native updates a scale set with a full PUT of its model). A `pulumi up` during an
// outage that changed, say, the cloud-init or the tags would have scaled the burst to 0, and
// with eviction policy Delete a scale-in deletes the running nodes.
//
// What the program does instead, on every preview and update:
//   1. it reads the scale set's *live* capacity from Azure (an invoke, i.e. a GET);
//   2. a scale set that does not exist yet is created with capacity 0;
//   3. a scale set at capacity 0 is declared with 0 (what Azure has: nothing to change);
//   4. a scale set with capacity > 0 means a burst is running: the program stops with an error
//      unless `allowUpDuringBurst` is true, in which case it declares the live value.
// So Pulumi's state never carries a capacity of its own, and no request the program makes can
// carry a capacity other than the one Azure reported when the program ran.

import * as compute from "@pulumi/azure-native/compute";

/** The scale set's name, fixed so that the program can look it up before declaring it. */
export const SCALE_SET_NAME = "burst-nodes";

export class BurstInProgressError extends Error {}

/** Looks a scale set up; rejects when it does not exist (the real one is an ARM GET). */
export type ScaleSetGetter = (args: { resourceGroupName: string; vmScaleSetName: string }) => Promise<{ sku?: { capacity?: number } }>;

/** ARM answers a GET of a missing resource with 404 / ResourceNotFound (or ParentResourceNotFound). */
export function isNotFound(e: unknown): boolean {
    const msg = e instanceof Error ? e.message : String(e);
    return /ResourceNotFound|ResourceGroupNotFound|\b404\b|was not found|could not be found/i.test(msg);
}

/** The live capacity, or undefined when the scale set does not exist yet. Other errors propagate. */
export async function readLiveCapacity(
    resourceGroupName: string,
    vmScaleSetName: string,
    get: ScaleSetGetter = (a) => compute.getVirtualMachineScaleSet(a),
): Promise<number | undefined> {
    try {
        const vmss = await get({ resourceGroupName, vmScaleSetName });
        return vmss.sku?.capacity ?? 0;
    } catch (e) {
        if (isNotFound(e)) return undefined;
        throw e;
    }
}

/** The capacity the program may declare, given what Azure has now (see the header). */
export function capacityToDeclare(live: number | undefined, allowUpDuringBurst: boolean): number {
    if (live === undefined || live === 0) return 0;
    if (allowUpDuringBurst) return live;
    throw new BurstInProgressError(
        `the burst scale set runs ${live} node(s) right now: a \`pulumi up\` would send a full model of the ` +
            "scale set while the function is managing it. Wait until the burst is over (capacity 0), or, if the " +
            "change cannot wait, `pulumi config set allowUpDuringBurst true` (the update then carries the live " +
            "capacity, and a max-price change fails while nodes run), `pulumi up`, and `pulumi config rm allowUpDuringBurst`.",
    );
}
