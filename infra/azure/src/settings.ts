// The function app's settings: one table, so that adding a setting is one line here
// (plus a line in infra/README.md, which a test keeps honest).
//
// Each entry is either read from stack config (`pulumi config set [--secret] KEY VALUE`)
// or derived from a resource this program creates. Secret entries are wrapped with
// `pulumi.secret`, so they are encrypted in the state file and masked in diffs.

import * as pulumi from "@pulumi/pulumi";

/** A setting whose value comes from stack config. */
export interface ConfigSetting {
    readonly env: string;
    /** Stack config key, in the project's namespace (`hybrid-burst:<key>`). */
    readonly key: string;
    readonly secret: boolean;
    /** Missing and no default: `pulumi up` stops with a clear error. */
    readonly required: boolean;
    /** Used when the key is unset. Optional settings without a default are left out of the app. */
    readonly default?: string;
    readonly doc: string;
}

/** Values that only exist once resources are created. */
export type DerivedValue = "stateContainerUrl" | "scaleSetId" | "wakeQueueName" | "wakeQueueUrl";

/** A setting wired from a created resource, never from config. */
export interface DerivedSetting {
    readonly env: string;
    readonly from: DerivedValue;
    readonly doc: string;
}

export type Setting = ConfigSetting | DerivedSetting;

export function isDerived(s: Setting): s is DerivedSetting {
    return "from" in s;
}

export const DEFAULT_PROBE_SCHEDULE = "*/30 * * * * *";

export const SETTINGS: readonly Setting[] = [
    { env: "BURST_STATE_URL", from: "stateContainerUrl", doc: "blob container URL of the state documents" },
    { env: "BURST_PROBE_SCHEDULE", key: "probeSchedule", secret: false, required: false, default: DEFAULT_PROBE_SCHEDULE, doc: "NCRONTAB schedule (6 fields) of the probe timer" },
    { env: "BURST_AGENT_ED25519_PUBLIC_KEY", key: "agentEd25519PublicKey", secret: true, required: false, doc: "PEM public key of the agents (EdDSA); `burst-agent keygen` prints it" },
    { env: "BURST_AGENT_HS256_SECRET", key: "agentHs256Secret", secret: true, required: false, doc: "shared secret of the agents (HS256), instead of the Ed25519 key" },
    { env: "TAILSCALE_WEBHOOK_SECRET", key: "tailscaleWebhookSecret", secret: true, required: true, doc: "Tailscale webhook signing secret" },
    { env: "DISCORD_WEBHOOK_URL", key: "discordWebhookUrl", secret: true, required: true, doc: "Discord webhook URL for incident messages" },
    { env: "BURST_ARM_SCALE_SET_ID", from: "scaleSetId", doc: "resource id of the Spot scale set" },
    { env: "BURST_SITE_ID", key: "siteId", secret: false, required: false, default: "home", doc: "site id (the agents' JWT `iss`)" },
    { env: "BURST_MAX_NODES", key: "maxNodes", secret: false, required: false, default: "5", doc: "hard cap on cloud nodes" },
    { env: "BURST_MONTHLY_BUDGET_USD", key: "monthlyBudgetUsd", secret: false, required: false, default: "20", doc: "monthly budget in USD (also the Azure budget's amount)" },
    { env: "BURST_PRICE_PER_NODE_HOUR", key: "pricePerNodeHour", secret: false, required: false, default: "0.05", doc: "price per node-hour in USD (also the scale set's Spot max price)" },
    { env: "BURST_TAILSCALE_API_KEY", key: "tailscaleApiKey", secret: true, required: false, doc: "Tailscale API key for the device list probe" },
    { env: "BURST_TAILSCALE_TAGS", key: "tailscaleTags", secret: false, required: false, doc: "comma-separated Tailscale tags the probe looks at" },
    { env: "BURST_HOME_KUBE_URL", key: "homeKubeUrl", secret: false, required: false, doc: "on-prem Kubernetes API URL (probe)" },
    { env: "BURST_HOME_KUBE_TOKEN", key: "homeKubeToken", secret: true, required: false, doc: "bearer token for the on-prem Kubernetes API" },
    { env: "BURST_CLOUD_KUBE_URL", key: "cloudKubeUrl", secret: false, required: false, doc: "cloud cluster Kubernetes API URL (migrations)" },
    { env: "BURST_CLOUD_KUBE_TOKEN", key: "cloudKubeToken", secret: true, required: false, doc: "bearer token for the cloud cluster Kubernetes API" },
    // The `wake` function's queue trigger names its queue `%BURST_WAKE_QUEUE%` (on the host's
    // storage, connection AzureWebJobsStorage); the handler sends to BURST_WAKE_QUEUE_URL with
    // the app's default identity, as the state store does. Both name the same created queue.
    { env: "BURST_WAKE_QUEUE", from: "wakeQueueName", doc: "name of the wake-up queue the `wake` function's trigger reads" },
    { env: "BURST_WAKE_QUEUE_URL", from: "wakeQueueUrl", doc: "URL of that queue (host storage's queue endpoint), where the handler sends wake-ups" },
];

/** Settings the Functions host itself needs (not ours to name). */
export const HOST_STORAGE_SETTING = "AzureWebJobsStorage__accountName";

/**
 * App settings that Flex Consumption rejects: the runtime lives in
 * `functionAppConfig.runtime` (name `custom` there is what `FUNCTIONS_WORKER_RUNTIME=custom`
 * is on the older plans) and the package in `functionAppConfig.deployment`.
 */
export const FLEX_FORBIDDEN_SETTINGS: readonly string[] = [
    "FUNCTIONS_WORKER_RUNTIME",
    "FUNCTIONS_WORKER_RUNTIME_VERSION",
    "FUNCTIONS_EXTENSION_VERSION",
    "WEBSITE_RUN_FROM_PACKAGE",
    "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
    "WEBSITE_CONTENTSHARE",
];

/**
 * Site configuration properties Flex Consumption does not support (Azure Functions docs,
 * "Flex Consumption plan deprecations"); the program must not set them. FTP is switched off
 * through the basic-publishing-credentials policy (WebAppFtpAllowed) instead of ftpsState.
 */
export const FLEX_UNSUPPORTED_SITE_CONFIG: readonly string[] = [
    "ftpsState",
    "alwaysOn",
    "linuxFxVersion",
    "use32BitWorkerProcess",
    "javaVersion",
    "powerShellVersion",
    "windowsFxVersion",
    "functionAppScaleLimit",
    "preWarmedInstanceCount",
];

/** Reads the stack config value of one setting (undefined when unset, optional and without default). */
export function readSetting(cfg: pulumi.Config, s: ConfigSetting): pulumi.Output<string> | undefined {
    // Secret keys are read with getSecret: get() would unwrap them and print a warning.
    const raw = s.secret ? cfg.getSecret(s.key) : cfg.get(s.key);
    if (raw !== undefined) return s.secret ? pulumi.secret(raw) : pulumi.output(raw);
    if (s.default !== undefined) return s.secret ? pulumi.secret(s.default) : pulumi.output(s.default);
    if (s.required) {
        throw new pulumi.RunError(
            `missing stack config ${cfg.name}:${s.key} (app setting ${s.env}: ${s.doc}); ` +
                `set it with: pulumi config set ${s.secret ? "--secret " : ""}${s.key} <value>`,
        );
    }
    return undefined;
}

/** The values of every config-sourced setting that has a value, keyed by env name. */
export function readSettings(cfg: pulumi.Config): Map<string, pulumi.Output<string>> {
    const out = new Map<string, pulumi.Output<string>>();
    for (const s of SETTINGS) {
        if (isDerived(s)) continue;
        const v = readSetting(cfg, s);
        if (v !== undefined) out.set(s.env, v);
    }
    return out;
}

export interface AppSetting {
    name: string;
    value: pulumi.Input<string>;
}

/**
 * The full app settings list in table order: config values, derived values, then the
 * host's own storage setting (identity-based, so no key or connection string).
 */
export function buildAppSettings(
    values: ReadonlyMap<string, pulumi.Input<string>>,
    derived: Readonly<Record<DerivedValue, pulumi.Input<string>>>,
    hostStorageAccountName: pulumi.Input<string>,
): AppSetting[] {
    const list: AppSetting[] = [];
    for (const s of SETTINGS) {
        if (isDerived(s)) {
            list.push({ name: s.env, value: derived[s.from] });
            continue;
        }
        const v = values.get(s.env);
        if (v !== undefined) list.push({ name: s.env, value: v });
    }
    list.push({ name: HOST_STORAGE_SETTING, value: hostStorageAccountName });
    return list;
}
