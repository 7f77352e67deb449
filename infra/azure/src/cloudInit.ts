// cloud-init for the Spot nodes: join the tailnet with a pre-approved tagged auth key,
// then run the user's cluster join script (kubeadm join / k3s agent / ...) with the node's
// tailnet address, so the node becomes part of the cloud cluster and, through it, of the
// Cilium cluster mesh. Secrets only ever reach the VM through customData (never returned
// by the ARM GET of the scale set) and are deleted once used.

export interface CloudInitInput {
    readonly siteId: string;
    readonly tailscaleAuthKey: string;
    readonly tailscaleTags: string;
    /** Shell script run as root after Tailscale is up; gets TS_IP, BURST_SITE_ID, BURST_NODE_LABELS. */
    readonly joinScript: string | undefined;
}

/** Labels every burst node registers with (the join script passes them to the kubelet). */
export const NODE_LABELS = "hybrid-burst.io/burst=true";

export const AUTHKEY_PATH = "/etc/hybrid-burst/tailscale-authkey";
export const JOIN_SCRIPT_PATH = "/etc/hybrid-burst/join.sh";
export const BOOTSTRAP_PATH = "/usr/local/sbin/hybrid-burst-bootstrap";

// Tailscale's documented install for Ubuntu 22.04 (jammy): its signed apt repository.
const TAILSCALE_APT = "https://pkgs.tailscale.com/stable/ubuntu";

function bootstrapScript(): string {
    return [
        "#!/bin/bash",
        "# Written by cloud-init (hybrid-burst). Idempotent: safe to re-run by hand.",
        "set -euo pipefail",
        "umask 077",
        "if ! command -v tailscale >/dev/null; then",
        "  install -d -m 0755 /usr/share/keyrings",
        `  curl -fsSL ${TAILSCALE_APT}/jammy.noarmor.gpg -o /usr/share/keyrings/tailscale-archive-keyring.gpg`,
        `  curl -fsSL ${TAILSCALE_APT}/jammy.tailscale-keyring.list -o /etc/apt/sources.list.d/tailscale.list`,
        "  chmod 0644 /usr/share/keyrings/tailscale-archive-keyring.gpg /etc/apt/sources.list.d/tailscale.list",
        "  apt-get update -q",
        "  DEBIAN_FRONTEND=noninteractive apt-get install -y -q tailscale",
        "fi",
        "systemctl enable --now tailscaled",
        "# shellcheck source=/dev/null",
        ". /etc/hybrid-burst/node.env",
        `if [ -s ${AUTHKEY_PATH} ]; then`,
        // --accept-routes: reach on-prem hosts behind the home subnet router
        // (infra/cluster/tailscale/connector-home-lan.yaml).
        `  tailscale up --auth-key="file:${AUTHKEY_PATH}" --advertise-tags="$BURST_TAILSCALE_TAGS" --hostname="$(hostname)" --accept-routes`,
        "fi",
        `rm -f ${AUTHKEY_PATH}`,
        "TS_IP=\"$(tailscale ip -4)\"",
        "export TS_IP BURST_SITE_ID BURST_NODE_LABELS",
        `if [ -x ${JOIN_SCRIPT_PATH} ]; then`,
        `  ${JOIN_SCRIPT_PATH}`,
        `  rm -f ${JOIN_SCRIPT_PATH}`,
        "else",
        '  echo "hybrid-burst: no join script configured; node is on the tailnet only" >&2',
        "fi",
        "",
    ].join("\n");
}

/** YAML scalar: JSON strings are valid YAML double-quoted scalars, whatever they contain. */
const q = (s: string): string => JSON.stringify(s);

/** The `#cloud-config` document (plain text; base64 it for customData). */
export function renderCloudInit(i: CloudInitInput): string {
    const files: string[] = [
        fileEntry("/etc/hybrid-burst/node.env", "0644", [
            `BURST_SITE_ID=${shellQuote(i.siteId)}`,
            `BURST_TAILSCALE_TAGS=${shellQuote(i.tailscaleTags)}`,
            `BURST_NODE_LABELS=${shellQuote(NODE_LABELS)}`,
            "",
        ].join("\n")),
        fileEntry(AUTHKEY_PATH, "0600", i.tailscaleAuthKey),
        fileEntry(BOOTSTRAP_PATH, "0700", bootstrapScript()),
    ];
    if (i.joinScript !== undefined && i.joinScript.trim() !== "") {
        const body = i.joinScript.startsWith("#!") ? i.joinScript : `#!/bin/bash\nset -euo pipefail\n${i.joinScript}`;
        files.push(fileEntry(JOIN_SCRIPT_PATH, "0700", body.endsWith("\n") ? body : body + "\n"));
    }
    return [
        "#cloud-config",
        "# hybrid-burst Spot node",
        "package_update: true",
        "packages:",
        "  - curl",
        "  - ca-certificates",
        "write_files:",
        ...files,
        "runcmd:",
        `  - [${q(BOOTSTRAP_PATH)}]`,
        "",
    ].join("\n");
}

function fileEntry(path: string, mode: string, content: string): string {
    return [`  - path: ${q(path)}`, `    owner: "root:root"`, `    permissions: ${q(mode)}`, `    content: ${q(content)}`].join("\n");
}

/** Single-quoted POSIX shell word. */
export function shellQuote(s: string): string {
    return `'${s.replace(/'/g, `'\\''`)}'`;
}
