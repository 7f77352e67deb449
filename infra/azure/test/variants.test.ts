// The program with the optional switches flipped and the optional settings unset.

import { before, test } from "node:test";
import assert from "node:assert/strict";
import * as yaml from "js-yaml";

import { BASE_CONFIG, SECRET_KEYS, type Built, runProgram } from "./harness";

const HS256 = "hs256-shared-secret-at-least-32-chars";
import { POLLING_ACTIONS } from "../src/roles";

let built: Built;
before(async () => {
    const c: Record<string, string> = {
        ...BASE_CONFIG,
        "hybrid-burst:allowAsyncOperationPolling": "true",
        "hybrid-burst:nodePublicIp": "false",
        "hybrid-burst:monthlyBudgetUsd": "35",
        "hybrid-burst:pricePerNodeHour": "0.04",
        "hybrid-burst:probeSchedule": "0 * * * * *",
        "hybrid-burst:vmSize": "Standard_D4s_v3",
        "hybrid-burst:functionMaxInstances": "100",
    };
    for (const k of ["tailscaleApiKey", "homeKubeToken", "cloudKubeToken", "nodeJoinScript", "agentEd25519PublicKey"]) delete c[`hybrid-burst:${k}`];
    c["hybrid-burst:agentHs256Secret"] = HS256;
    built = await runProgram(c, [...SECRET_KEYS, "hybrid-burst:agentHs256Secret"]);
});

const all = (t: string) => built.resources.filter((r) => r.type === `azure-native:${t}`);
const settings = () =>
    new Map((all("web:WebApp")[0]!.inputs.siteConfig.appSettings as { name: string; value: string }[]).map((s) => [s.name, s.value]));

test("polling role: only the operation-status action, at the resource group", () => {
    const rg = all("resources:ResourceGroup")[0]!;
    const roles = all("authorization:RoleDefinition");
    assert.equal(roles.length, 3);
    const polling = roles.find((r) => r.name === "burst-operation-reader")!;
    assert.deepEqual(polling.inputs.permissions[0].actions, [...POLLING_ACTIONS]);
    const a = all("authorization:RoleAssignment").find((r) => r.inputs.roleDefinitionId === polling.id)!;
    assert.equal(a.inputs.scope, rg.id);
});

test("no public IP on the nodes when nodePublicIp=false", () => {
    const nic = all("compute:VirtualMachineScaleSet")[0]!.inputs.virtualMachineProfile.networkProfile.networkInterfaceConfigurations[0];
    assert.equal(nic.ipConfigurations[0].publicIPAddressConfiguration, undefined);
});

test("budget, price and schedule follow config, in Azure and in the app alike", () => {
    assert.equal(all("consumption:Budget")[0]!.inputs.amount, 35);
    assert.equal(settings().get("BURST_MONTHLY_BUDGET_USD"), "35");
    assert.equal(all("compute:VirtualMachineScaleSet")[0]!.inputs.virtualMachineProfile.billingProfile.maxPrice, 0.04);
    assert.equal(settings().get("BURST_PRICE_PER_NODE_HOUR"), "0.04");
    assert.equal(settings().get("BURST_PROBE_SCHEDULE"), "0 * * * * *");
});

test("unset optional settings are absent, not empty", () => {
    const s = settings();
    for (const env of ["BURST_TAILSCALE_API_KEY", "BURST_HOME_KUBE_TOKEN", "BURST_CLOUD_KUBE_TOKEN", "BURST_AGENT_ED25519_PUBLIC_KEY"]) {
        assert.ok(!s.has(env), env);
    }
    for (const [k, v] of s) assert.notEqual(v, "", `${k} is empty`);
});

test("HS256 instead of Ed25519: the secret reaches the app, as a secret", () => {
    assert.equal(settings().get("BURST_AGENT_HS256_SECRET"), HS256);
    assert.ok(all("web:WebApp")[0]!.hasSecret);
});

test("without a join script the node still joins the tailnet", () => {
    const data = all("compute:VirtualMachineScaleSet")[0]!.inputs.virtualMachineProfile.osProfile.customData;
    const doc = yaml.load(Buffer.from(data, "base64").toString("utf8")) as { write_files: { path: string; content: string }[] };
    const paths = doc.write_files.map((f) => f.path);
    assert.ok(!paths.includes("/etc/hybrid-burst/join.sh"));
    assert.ok(paths.includes("/etc/hybrid-burst/tailscale-authkey"));
});

test("a 4-vCPU size gets accelerated networking; the Flex instance cap follows config", () => {
    const vmss = all("compute:VirtualMachineScaleSet")[0]!.inputs;
    assert.equal(vmss.sku.name, "Standard_D4s_v3");
    assert.equal(vmss.virtualMachineProfile.networkProfile.networkInterfaceConfigurations[0].enableAcceleratedNetworking, true);
    assert.equal(all("web:WebApp")[0]!.inputs.functionAppConfig.scaleAndConcurrency.maximumInstanceCount, 100);
});
