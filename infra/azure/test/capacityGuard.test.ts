// A `pulumi up` (or preview) while the burst runs: the program stops before the scale set is
// declared, so no request can carry a stale capacity during an outage (see src/capacity.ts).
//
// The refusal is an error inside the program's Output chain, which the Pulumi runtime reports
// as the program's failure (an unhandled rejection). node:test would count that against
// whichever test is running, so the program runs in a child process (this same file, with
// HB_GUARD_CHILD set) and the test reads how it ended.

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";

import { BASE_CONFIG, liveScaleSets, recorded, runProgram } from "./harness";
import { SCALE_SET_NAME } from "../src/capacity";

const RG = "hybrid-burst-home"; // the mocks name the resource group after its logical name

if (process.env.HB_GUARD_CHILD) {
    const live = Number(process.env.HB_GUARD_CHILD);
    liveScaleSets.set(`${RG}/${SCALE_SET_NAME}`, live);
    const config = { ...BASE_CONFIG, ...(process.env.HB_GUARD_ALLOW ? { "hybrid-burst:allowUpDuringBurst": "true" } : {}) };
    const scaleSets = () => recorded.filter((r) => r.type === "azure-native:compute:VirtualMachineScaleSet");
    process.on("unhandledRejection", (e) => {
        process.stdout.write(JSON.stringify({ ended: "refused", message: e instanceof Error ? e.message : String(e), scaleSets: scaleSets().length }) + "\n");
        process.exit(3);
    });
    runProgram(config).then(
        () => {
            const capacity = scaleSets()[0]?.inputs.sku.capacity;
            process.stdout.write(JSON.stringify({ ended: "completed", capacity, scaleSets: scaleSets().length }) + "\n");
            process.exit(0);
        },
        (e: Error) => {
            process.stdout.write(JSON.stringify({ ended: "failed", message: e.message }) + "\n");
            process.exit(4);
        },
    );
} else {
    const run = (live: number, allow: boolean) => {
        const env = { ...process.env, HB_GUARD_CHILD: String(live), ...(allow ? { HB_GUARD_ALLOW: "1" } : {}) };
        const r = spawnSync(process.execPath, [__filename], { env, encoding: "utf8", timeout: 60_000 });
        const last = r.stdout.trim().split("\n").pop() ?? "";
        assert.ok(last.startsWith("{"), `child output: ${r.stdout}\n${r.stderr}`);
        return { status: r.status, ...(JSON.parse(last) as { ended: string; message?: string; capacity?: number; scaleSets: number }) };
    };

    test("burst running (live capacity 3), no override: the program refuses and declares no scale set", () => {
        const r = run(3, false);
        assert.equal(r.ended, "refused", JSON.stringify(r));
        assert.equal(r.status, 3);
        assert.match(r.message ?? "", /runs 3 node\(s\) right now/);
        assert.match(r.message ?? "", /allowUpDuringBurst/);
        assert.equal(r.scaleSets, 0, "no scale set reached Azure (the mocks)");
    });

    test("burst running, allowUpDuringBurst=true: the update carries the live capacity, not 0", () => {
        const r = run(3, true);
        assert.equal(r.ended, "completed", JSON.stringify(r));
        assert.equal(r.capacity, 3);
    });

    test("idle scale set (live capacity 0): the program declares 0, which is what Azure has", () => {
        const r = run(0, false);
        assert.equal(r.ended, "completed", JSON.stringify(r));
        assert.equal(r.capacity, 0);
    });
}
