// The cloud-init document: valid YAML whatever the secrets contain, files with tight modes.

import { test } from "node:test";
import assert from "node:assert/strict";
import * as yaml from "js-yaml";

import { AUTHKEY_PATH, BOOTSTRAP_PATH, JOIN_SCRIPT_PATH, renderCloudInit, shellQuote } from "../src/cloudInit";

interface Doc {
    package_update: boolean;
    packages: string[];
    write_files: { path: string; owner: string; permissions: string; content: string }[];
    runcmd: string[][];
}
const render = (over: Partial<Parameters<typeof renderCloudInit>[0]> = {}) =>
    renderCloudInit({ siteId: "home", tailscaleAuthKey: "tskey-auth-x", tailscaleTags: "tag:burst", joinScript: "echo join", ...over });
const parse = (text: string) => yaml.load(text) as Doc;

test("is a #cloud-config YAML document", () => {
    const text = render();
    assert.ok(text.startsWith("#cloud-config\n"));
    const doc = parse(text);
    assert.equal(doc.package_update, true);
    assert.deepEqual(doc.runcmd, [[BOOTSTRAP_PATH]]);
});

test("secret files are root-only; the auth key is removed after use", () => {
    const doc = parse(render());
    const f = (p: string) => doc.write_files.find((x) => x.path === p)!;
    assert.equal(f(AUTHKEY_PATH).permissions, "0600");
    assert.equal(f(JOIN_SCRIPT_PATH).permissions, "0700");
    assert.equal(f(BOOTSTRAP_PATH).permissions, "0700");
    for (const x of doc.write_files) assert.equal(x.owner, "root:root");
    assert.match(f(BOOTSTRAP_PATH).content, new RegExp(`rm -f ${AUTHKEY_PATH}`));
    assert.match(f(BOOTSTRAP_PATH).content, /^#!\/bin\/bash\n/);
    assert.match(f(BOOTSTRAP_PATH).content, /set -euo pipefail/);
});

test("hostile values round-trip exactly (quotes, newlines, YAML syntax)", () => {
    const nasty = `tskey-auth-"quoted" 'single' # not a comment\n: colon\n- dash\n\\backslash`;
    const script = "#!/bin/sh\necho \"it's\" ${HOME}\n---\n";
    const doc = parse(render({ tailscaleAuthKey: nasty, joinScript: script }));
    assert.equal(doc.write_files.find((x) => x.path === AUTHKEY_PATH)!.content, nasty);
    assert.equal(doc.write_files.find((x) => x.path === JOIN_SCRIPT_PATH)!.content, script);
});

test("a join script without a shebang gets bash with strict mode", () => {
    const doc = parse(render({ joinScript: "kubeadm join x" }));
    assert.equal(doc.write_files.find((x) => x.path === JOIN_SCRIPT_PATH)!.content, "#!/bin/bash\nset -euo pipefail\nkubeadm join x\n");
});

test("node.env values are shell-quoted", () => {
    assert.equal(shellQuote("a'b"), `'a'\\''b'`);
    const doc = parse(render({ tailscaleTags: "tag:burst,tag:x" }));
    const env = doc.write_files.find((x) => x.path === "/etc/hybrid-burst/node.env")!.content;
    assert.match(env, /^BURST_TAILSCALE_TAGS='tag:burst,tag:x'$/m);
    assert.match(env, /^BURST_NODE_LABELS='hybrid-burst.io\/burst=true'$/m);
});

test("tailscale up uses the tags and the key file, never the key on the command line", () => {
    const doc = parse(render({ tailscaleAuthKey: "tskey-auth-SECRET" }));
    const boot = doc.write_files.find((x) => x.path === BOOTSTRAP_PATH)!.content;
    assert.match(boot, /tailscale up --auth-key="file:\/etc\/hybrid-burst\/tailscale-authkey" --advertise-tags="\$BURST_TAILSCALE_TAGS" --hostname="\$\(hostname\)" --accept-routes$/m);
    assert.ok(!boot.includes("SECRET"));
});
