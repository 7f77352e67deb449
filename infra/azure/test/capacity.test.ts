// The capacity the program declares for the scale set (src/capacity.ts), without Pulumi.

import { describe, test } from "node:test";
import assert from "node:assert/strict";

import { BurstInProgressError, capacityToDeclare, isNotFound, readLiveCapacity } from "../src/capacity";

describe("capacityToDeclare", () => {
    test("a scale set that does not exist yet is created empty", () => {
        assert.equal(capacityToDeclare(undefined, false), 0);
        assert.equal(capacityToDeclare(undefined, true), 0);
    });
    test("an idle scale set stays at what Azure has, 0", () => {
        assert.equal(capacityToDeclare(0, false), 0);
    });
    test("a running burst stops the program unless allowed, and then keeps the live value", () => {
        assert.throws(() => capacityToDeclare(2, false), (e: Error) => e instanceof BurstInProgressError && /runs 2 node\(s\)/.test(e.message));
        assert.equal(capacityToDeclare(2, true), 2);
        assert.equal(capacityToDeclare(5, true), 5);
    });
    test("whatever the inputs, the declared value is 0 or the live value, never anything else", () => {
        for (const live of [undefined, 0, 1, 3, 100]) {
            for (const allow of [false, true]) {
                let got: number | undefined;
                try {
                    got = capacityToDeclare(live, allow);
                } catch {
                    continue;
                }
                assert.ok(got === (live ?? 0), `live ${live}, allow ${allow} → ${got}`);
            }
        }
    });
});

describe("readLiveCapacity", () => {
    test("reads sku.capacity of the named scale set", async () => {
        const seen: unknown[] = [];
        const got = await readLiveCapacity("rg-1", "burst-nodes", async (a) => {
            seen.push(a);
            return { sku: { capacity: 4 } };
        });
        assert.equal(got, 4);
        assert.deepEqual(seen, [{ resourceGroupName: "rg-1", vmScaleSetName: "burst-nodes" }]);
    });
    test("a scale set without sku.capacity counts as 0", async () => {
        assert.equal(await readLiveCapacity("rg", "n", async () => ({})), 0);
    });
    test("404 / ResourceNotFound → undefined (not created yet)", async () => {
        const notFound = async () => {
            throw new Error('Status=404 Code="ResourceNotFound" Message="The Resource ... was not found."');
        };
        assert.equal(await readLiveCapacity("rg", "n", notFound), undefined);
    });
    test("any other error stops the program (never guess a capacity)", async () => {
        const forbidden = async () => {
            throw new Error('Status=403 Code="AuthorizationFailed" Message="... does not have authorization to perform action ..."');
        };
        await assert.rejects(readLiveCapacity("rg", "n", forbidden), /AuthorizationFailed/);
    });
    test("isNotFound", () => {
        assert.ok(isNotFound(new Error('Code="ResourceGroupNotFound"')));
        assert.ok(isNotFound(new Error("StatusCode=404")));
        assert.ok(!isNotFound(new Error("StatusCode=4040")));
        assert.ok(!isNotFound(new Error("throttled (429)")));
    });
});
