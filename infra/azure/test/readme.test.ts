// infra/README.md documents every app setting and every stack config key the program reads.

import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";

import { SETTINGS, isDerived } from "../src/settings";
import { DEPLOYER_ACTIONS, actionMatches, rolesGrant } from "../src/roles";

// Compiled to infra/azure/build/test/: the sources are two levels up.
const AZURE = path.resolve(__dirname, "..", "..");
const readme = fs.readFileSync(path.join(AZURE, "..", "README.md"), "utf8");

test("every app setting has a row in the README's table, with its config key", () => {
    for (const s of SETTINGS) {
        const row = readme.split("\n").find((l) => l.startsWith(`| \`${s.env}\` |`));
        assert.ok(row, `README lacks a row for ${s.env}`);
        if (!isDerived(s)) {
            assert.ok(row.includes(`\`${s.key}\``), `README row of ${s.env} names config key ${s.key}`);
            if (s.default !== undefined) assert.ok(row.includes(`\`${s.default}\``), `README row of ${s.env} shows default ${s.default}`);
            assert.equal(/\| yes \|/.test(row), s.secret, `README row of ${s.env} marks secret=${s.secret}`);
        }
    }
});

test("every stack config key the program reads is documented", () => {
    const src = fs.readFileSync(path.join(AZURE, "src", "config.ts"), "utf8");
    const keys = new Set<string>();
    for (const m of src.matchAll(/(?:cfg\.(?:get|getSecret|getObject|require)(?:<[^>]*>)?\(|(?:num|bool|fail)\(cfg, )"([A-Za-z0-9]+)"/g)) keys.add(m[1]!);
    assert.ok(keys.size >= 10, `found ${keys.size} keys`);
    for (const k of keys) assert.ok(readme.includes(`\`${k}\``), `README does not document config key ${k}`);
});

test("the deployer roles table: every verdict follows from the roles' definitions", () => {
    const start = readme.indexOf("| roles at the subscription | enough to deploy and destroy |");
    assert.ok(start >= 0, "README has the table of roles that can deploy");
    const rows = readme
        .slice(start)
        .split("\n")
        .slice(2)
        .filter((_, i, all) => all.slice(0, i + 1).every((l) => l.startsWith("|")));
    assert.ok(rows.length >= 3, `found ${rows.length} rows`);
    const seen: string[] = [];
    for (const row of rows) {
        const [roles, verdict] = row.split("|").slice(1, 3).map((c) => c.trim()) as [string, string];
        const names = roles.split("+").map((r) => r.trim());
        const granted = DEPLOYER_ACTIONS.every((a) => rolesGrant(names, a));
        assert.equal(verdict.startsWith("yes"), granted, `README says "${verdict}" for ${roles}; the definitions say ${granted ? "yes" : "no"}`);
        assert.ok(verdict.startsWith("yes") || verdict.startsWith("no"), `verdict of ${roles}`);
        seen.push(names.join(" + "));
    }
    // The pair the old guide recommended is in the table, as a "no".
    assert.ok(seen.includes("Contributor + Role Based Access Control Administrator"));
    assert.ok(rows.some((r) => r.includes("| yes")), "at least one way to deploy");
    // And nothing else in the README offers that role as enough (the old guide did, in a
    // sentence wrapped across lines: match across line breaks).
    const lines = readme.split("\n");
    for (const m of readme.matchAll(/Role\s+Based\s+Access\s+Control\s+Administrator/g)) {
        const line = lines[readme.slice(0, m.index).split("\n").length - 1]!;
        assert.ok(rows.includes(line) && /\|\s*no\b/.test(line), `README mentions Role Based Access Control Administrator outside the table's "no" rows: ${line}`);
    }
});

test("the roles model matches Azure's definitions where it matters", () => {
    assert.ok(rolesGrant(["Owner"], "Microsoft.Authorization/roleDefinitions/write"));
    assert.ok(!rolesGrant(["Contributor"], "Microsoft.Authorization/roleAssignments/write"));
    assert.ok(rolesGrant(["Contributor"], "Microsoft.Compute/virtualMachineScaleSets/write"));
    assert.ok(rolesGrant(["Role Based Access Control Administrator"], "Microsoft.Authorization/roleAssignments/write"));
    assert.ok(!rolesGrant(["Role Based Access Control Administrator"], "Microsoft.Authorization/roleDefinitions/write"));
    assert.ok(rolesGrant(["User Access Administrator"], "Microsoft.Authorization/roleDefinitions/write"));
    assert.ok(!rolesGrant(["User Access Administrator"], "Microsoft.Web/sites/write"));
    assert.ok(actionMatches("*/read", "Microsoft.Compute/virtualMachineScaleSets/read"));
    assert.ok(!actionMatches("Microsoft.Authorization/*/Write", "Microsoft.Authorization/roleAssignments/delete"));
});

test("every `pulumi stack output` the guides use is an output of the program", () => {
    const index = fs.readFileSync(path.join(AZURE, "src", "index.ts"), "utf8");
    const exported = new Set([...index.matchAll(/^export const (\w+)/gm)].map((m) => m[1]!));
    const checklist = fs.readFileSync(path.join(AZURE, "..", "..", "docs", "deploy-checklist.md"), "utf8");
    let uses = 0;
    for (const [name, text] of [["infra/README.md", readme], ["docs/deploy-checklist.md", checklist]] as const) {
        for (const m of text.matchAll(/pulumi stack output (\w+)/g)) {
            uses++;
            assert.ok(exported.has(m[1]!), `${name} uses \`pulumi stack output ${m[1]}\`, which src/index.ts does not export`);
        }
    }
    assert.ok(uses >= 10, `found ${uses} uses`);
});
