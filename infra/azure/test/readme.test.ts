// infra/README.md documents every app setting and every stack config key the program reads.

import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";

import { SETTINGS, isDerived } from "../src/settings";

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
