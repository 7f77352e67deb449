// The Azure resources of one hybrid-burst site. No config reading and no clock here:
// everything comes in as a StackConfig, so the unit tests can build the stack under mocks.

import * as pulumi from "@pulumi/pulumi";
import * as applicationinsights from "@pulumi/azure-native/applicationinsights";
import * as authorization from "@pulumi/azure-native/authorization";
import * as compute from "@pulumi/azure-native/compute";
import * as consumption from "@pulumi/azure-native/consumption";
import * as managedidentity from "@pulumi/azure-native/managedidentity";
import * as network from "@pulumi/azure-native/network";
import * as operationalinsights from "@pulumi/azure-native/operationalinsights";
import * as resources from "@pulumi/azure-native/resources";
import * as storage from "@pulumi/azure-native/storage";
import * as web from "@pulumi/azure-native/web";

import { SCALE_SET_NAME, capacityToDeclare, readLiveCapacity } from "./capacity";
import { renderCloudInit } from "./cloudInit";
import type { StackConfig } from "./config";
import {
    POLLING_ACTIONS,
    SCALE_SET_ACTIONS,
    STORAGE_BLOB_DATA_CONTRIBUTOR,
    STORAGE_BLOB_DATA_OWNER,
    STORAGE_QUEUE_DATA_MESSAGE_SENDER,
    STORAGE_TABLE_DATA_CONTRIBUTOR,
    WAKE_QUEUE_ACTIONS,
    WAKE_QUEUE_DATA_ACTIONS,
    builtInRoleId,
    stableGuid,
} from "./roles";
import { type AppSetting, buildAppSettings } from "./settings";

export const VNET_PREFIX = "10.1.0.0/16";
export const SUBNET_PREFIX = "10.1.1.0/24";
export const STATE_CONTAINER = "burst-state";
export const PACKAGE_CONTAINER = "app-package";
/** The scheduled wake-ups' queue, in the host's account (`BURST_WAKE_QUEUE`). */
export const WAKE_QUEUE = "burst-wake";
/** Where the Functions host moves a message after `maxDequeueCount` failures: `<queue>-poison`. */
export const WAKE_POISON_QUEUE = `${WAKE_QUEUE}-poison`;
export const BUDGET_THRESHOLDS = [50, 80, 100] as const;

/**
 * The Functions host's own setting for Application Insights (not ours to name, like
 * AzureWebJobsStorage): the host sends its invocation telemetry and the handler's stdout log
 * lines there. docs/telemetry.md says what arrives and how to add the handler's OTLP traces.
 */
export const APP_INSIGHTS_SETTING = "APPLICATIONINSIGHTS_CONNECTION_STRING";
/** Days the logs and traces are kept: the least a PerGB2018 workspace keeps. */
export const LOG_RETENTION_DAYS = 30;
/**
 * The workspace's daily ingestion cap in GB: ingestion stops for the rest of the day beyond
 * it, so a log storm costs at most this much a day (about 3 GB a month).
 */
export const LOG_DAILY_CAP_GB = 0.1;

/** Ubuntu 22.04 LTS (Gen2) from Canonical's marketplace offer. */
export const UBUNTU_2204 = {
    publisher: "Canonical",
    offer: "0001-com-ubuntu-server-jammy",
    sku: "22_04-lts-gen2",
    version: "latest",
} as const;

export interface Stack {
    resourceGroup: resources.ResourceGroup;
    /** State documents and the deployment package (two private containers), nothing else. */
    storageAccount: storage.StorageAccount;
    /** The Functions host's own storage (`AzureWebJobsStorage`) and the wake-up queues. */
    hostStorageAccount: storage.StorageAccount;
    /** The wake-up queue and its poison queue, in the host's account. */
    wakeQueue: storage.Queue;
    wakePoisonQueue: storage.Queue;
    /** `BURST_WAKE_QUEUE_URL`: the host account's queue endpoint + the wake queue. */
    wakeQueueUrl: pulumi.Output<string>;
    stateContainer: storage.BlobContainer;
    packageContainer: storage.BlobContainer;
    stateUrl: pulumi.Output<string>;
    vnet: network.VirtualNetwork;
    nsg: network.NetworkSecurityGroup;
    subnet: network.Subnet;
    scaleSet: compute.VirtualMachineScaleSet;
    plan: web.AppServicePlan;
    /** Where the logs and traces are kept (30 days, daily cap). */
    logWorkspace: operationalinsights.Workspace;
    /** Workspace-based Application Insights: the function app's APPLICATIONINSIGHTS_CONNECTION_STRING. */
    appInsights: applicationinsights.Component;
    app: web.WebApp;
    appSettings: AppSetting[];
    ftpPolicy: web.WebAppFtpAllowed;
    scmPolicy: web.WebAppScmAllowed;
    principalId: pulumi.Output<string>;
    /** Flex Consumption's deployment-storage identity: the package container and nothing else. */
    deployIdentity: managedidentity.UserAssignedIdentity;
    scaleSetRole: authorization.RoleDefinition;
    scaleSetRoleAssignment: authorization.RoleAssignment;
    /** The wake queue's custom role (the trigger's and the sender's rights, see roles.ts). */
    wakeQueueRole: authorization.RoleDefinition;
    /** The function's rights on the two queues. */
    queueRoleAssignments: {
        wake: authorization.RoleAssignment;
        poison: authorization.RoleAssignment;
    };
    /** Every storage data-plane assignment, by purpose. */
    storageRoleAssignments: {
        hostBlobs: authorization.RoleAssignment;
        hostTables: authorization.RoleAssignment;
        state: authorization.RoleAssignment;
        package: authorization.RoleAssignment;
    };
    pollingRoleAssignment: authorization.RoleAssignment | undefined;
    budget: consumption.Budget;
}

export function createStack(cfg: StackConfig): Stack {
    const tags = { ...cfg.tags };
    const location = cfg.location;

    const resourceGroup = new resources.ResourceGroup(`hybrid-burst-${cfg.siteId}`, { location, tags });
    const rg = resourceGroup.name;

    // --- storage: identity-only (no account keys, no anonymous blobs), HTTPS + TLS 1.2.
    // Two accounts, so that the right the Functions host needs on its own storage (Blob Data
    // Owner: it creates containers, holds leases and keys) covers nothing of ours.
    const accountArgs = {
        resourceGroupName: rg,
        location,
        kind: storage.Kind.StorageV2,
        sku: { name: storage.SkuName.Standard_LRS },
        accessTier: storage.AccessTier.Hot,
        enableHttpsTrafficOnly: true,
        minimumTlsVersion: storage.MinimumTlsVersion.TLS1_2,
        allowBlobPublicAccess: false,
        allowSharedKeyAccess: false,
        defaultToOAuthAuthentication: true,
        allowCrossTenantReplication: false,
        tags,
    };
    // State documents and the deployment package.
    const storageAccount = new storage.StorageAccount("burststate", accountArgs);
    // AzureWebJobsStorage: timer locks, host keys, diagnostic events. The host creates what it
    // needs there, except the wake-up queues below.
    const hostStorageAccount = new storage.StorageAccount("bursthost", accountArgs);
    const containerArgs = { resourceGroupName: rg, accountName: storageAccount.name, publicAccess: storage.PublicAccess.None };
    const stateContainer = new storage.BlobContainer("state", { ...containerArgs, containerName: STATE_CONTAINER });
    const packageContainer = new storage.BlobContainer("app-package", { ...containerArgs, containerName: PACKAGE_CONTAINER });
    const blobEndpoint = storageAccount.primaryEndpoints.apply((e) => e.blob);
    const stateUrl = pulumi.interpolate`${blobEndpoint}${stateContainer.name}`;
    const packageUrl = pulumi.interpolate`${blobEndpoint}${packageContainer.name}`;

    // --- scheduled wake-ups: a queue on the host's storage, where the `wake` function's trigger
    // (connection AzureWebJobsStorage, identity-based) looks, and its poison queue. Created
    // here so that the host needs no right to create queues (see roles.ts).
    const queueArgs = { resourceGroupName: rg, accountName: hostStorageAccount.name };
    const wakeQueue = new storage.Queue("wake", { ...queueArgs, queueName: WAKE_QUEUE });
    const wakePoisonQueue = new storage.Queue("wake-poison", { ...queueArgs, queueName: WAKE_POISON_QUEUE });
    const queueEndpoint = hostStorageAccount.primaryEndpoints.apply((e) => e.queue);
    const wakeQueueUrl = pulumi.interpolate`${queueEndpoint}${wakeQueue.name}`;

    // --- network for the Spot nodes: no inbound from the internet (admin access is Tailscale).
    const vnet = new network.VirtualNetwork("burst", {
        resourceGroupName: rg,
        location,
        addressSpace: { addressPrefixes: [VNET_PREFIX] },
        tags,
    });
    const nsg = new network.NetworkSecurityGroup("burst-nodes", {
        resourceGroupName: rg,
        location,
        securityRules: [
            {
                // Explicit, so that an allow rule added later by hand is visibly an exception.
                name: "deny-internet-inbound",
                priority: 4000,
                direction: network.SecurityRuleDirection.Inbound,
                access: network.SecurityRuleAccess.Deny,
                protocol: network.SecurityRuleProtocol.Asterisk,
                sourceAddressPrefix: "Internet",
                sourcePortRange: "*",
                destinationAddressPrefix: "*",
                destinationPortRange: "*",
            },
        ],
        tags,
    });
    const subnet = new network.Subnet("burst-nodes", {
        resourceGroupName: rg,
        virtualNetworkName: vnet.name,
        addressPrefix: SUBNET_PREFIX,
        networkSecurityGroup: { id: nsg.id },
        // Outbound goes through each node's own Standard public IP (see nodePublicIp), not
        // Azure's retiring implicit default outbound access.
        defaultOutboundAccess: false,
    });

    // --- the Spot scale set; capacity is the function's to change, never Pulumi's: the program
    // declares what Azure has right now, and refuses to run during a burst (see capacity.ts).
    const capacity = rg.apply(async (name) =>
        capacityToDeclare(await readLiveCapacity(name, SCALE_SET_NAME), cfg.allowUpDuringBurst),
    );
    const customData = pulumi
        .all([cfg.nodeTailscaleAuthKey, cfg.nodeJoinScript ?? pulumi.output(undefined)])
        .apply(([authKey, join]) =>
            Buffer.from(
                renderCloudInit({ siteId: cfg.siteId, tailscaleAuthKey: authKey, tailscaleTags: cfg.nodeTailscaleTags, joinScript: join }),
                "utf8",
            ).toString("base64"),
        );
    const scaleSet = new compute.VirtualMachineScaleSet(
        "burst-nodes",
        {
            resourceGroupName: rg,
            vmScaleSetName: SCALE_SET_NAME,
            location,
            orchestrationMode: compute.OrchestrationMode.Uniform,
            sku: { name: cfg.vmSize, tier: "Standard", capacity },
            // Overprovisioned extra VMs would run cloud-init and join the tailnet before
            // being deleted: ghost nodes. One VM per unit of capacity.
            overprovision: false,
            upgradePolicy: { mode: compute.UpgradeMode.Manual },
            virtualMachineProfile: {
                priority: compute.VirtualMachinePriorityTypes.Spot,
                evictionPolicy: compute.VirtualMachineEvictionPolicyTypes.Delete,
                billingProfile: { maxPrice: cfg.pricePerNodeHour },
                osProfile: {
                    computerNamePrefix: "burst",
                    adminUsername: cfg.adminUsername,
                    customData: pulumi.secret(customData),
                    linuxConfiguration: {
                        disablePasswordAuthentication: true,
                        provisionVMAgent: true,
                        ssh: {
                            publicKeys: [{ path: `/home/${cfg.adminUsername}/.ssh/authorized_keys`, keyData: cfg.sshPublicKey }],
                        },
                    },
                },
                storageProfile: {
                    imageReference: { ...UBUNTU_2204 },
                    // Ephemeral OS disk on the VM's cache: no disk to pay for or leak; Spot
                    // with an ephemeral OS disk requires eviction policy Delete (which we want).
                    osDisk: {
                        createOption: compute.DiskCreateOptionTypes.FromImage,
                        caching: compute.CachingTypes.ReadOnly,
                        diffDiskSettings: { option: compute.DiffDiskOptions.Local, placement: compute.DiffDiskPlacement.CacheDisk },
                        managedDisk: { storageAccountType: compute.StorageAccountTypes.Standard_LRS },
                    },
                },
                networkProfile: {
                    networkInterfaceConfigurations: [
                        {
                            name: "nic",
                            primary: true,
                            // Off on 2-vCPU sizes such as the default Standard_D2s_v3: Azure
                            // allows it on hyperthreaded sizes with 4+ vCPUs only (config.ts).
                            enableAcceleratedNetworking: cfg.nodeAcceleratedNetworking,
                            ipConfigurations: [
                                {
                                    name: "ipv4",
                                    primary: true,
                                    subnet: { id: subnet.id },
                                    publicIPAddressConfiguration: cfg.nodePublicIp
                                        ? {
                                              name: "pip",
                                              sku: { name: compute.PublicIPAddressSkuName.Standard, tier: compute.PublicIPAddressSkuTier.Regional },
                                              idleTimeoutInMinutes: 15,
                                              deleteOption: compute.DeleteOptions.Delete,
                                          }
                                        : undefined,
                                },
                            ],
                        },
                    ],
                },
            },
            tags,
        },
        // The name is fixed (the capacity read needs it before the resource exists), so a
        // replacement must delete the old scale set before creating the new one.
        { deleteBeforeReplace: true },
    );

    // --- the function app: Flex Consumption, custom handler, system-assigned identity.
    const plan = new web.AppServicePlan("burst-functions", {
        resourceGroupName: rg,
        location,
        kind: "functionapp",
        reserved: true, // Linux
        sku: { name: "FC1", tier: "FlexConsumption" },
        tags,
    });
    // --- logs and traces: workspace-based Application Insights on a small Log Analytics
    // workspace (pay per GB, the shortest retention, a daily cap). The host sends the
    // invocations and the handler's JSON log lines there.
    const logWorkspace = new operationalinsights.Workspace("burst-logs", {
        resourceGroupName: rg,
        location,
        sku: { name: operationalinsights.WorkspaceSkuNameEnum.PerGB2018 },
        retentionInDays: LOG_RETENTION_DAYS,
        workspaceCapping: { dailyQuotaGb: LOG_DAILY_CAP_GB },
        tags,
    });
    const appInsights = new applicationinsights.Component("burst-functions", {
        resourceGroupName: rg,
        location,
        kind: "web",
        applicationType: applicationinsights.ApplicationType.Web,
        ingestionMode: applicationinsights.IngestionMode.LogAnalytics,
        workspaceResourceId: logWorkspace.id,
        tags,
    });
    const appSettings = [
        ...buildAppSettings(
            cfg.settings,
            { stateContainerUrl: stateUrl, scaleSetId: scaleSet.id, wakeQueueName: wakeQueue.name, wakeQueueUrl },
            hostStorageAccount.name,
        ),
        // It carries the ingestion key: kept encrypted in the state like the other secrets.
        { name: APP_INSIGHTS_SETTING, value: pulumi.secret(appInsights.connectionString) },
    ];
    // Flex Consumption writes the package with this identity on deploy and reads it on start.
    const deployIdentity = new managedidentity.UserAssignedIdentity("burst-deploy", { resourceGroupName: rg, location, tags });
    const app = new web.WebApp("burst-functions", {
        resourceGroupName: rg,
        location,
        kind: "functionapp,linux",
        serverFarmId: plan.id,
        httpsOnly: true,
        clientCertEnabled: false,
        // System-assigned: the host and our code (the default identity, no client id needed).
        // User-assigned: deployment storage only.
        identity: { type: web.ManagedServiceIdentityType.SystemAssigned_UserAssigned, userAssignedIdentities: [deployIdentity.id] },
        // No ftpsState: Flex Consumption does not support it (Azure Functions docs, "Flex
        // Consumption plan deprecations"); FTP is off through WebAppFtpAllowed below instead.
        siteConfig: {
            appSettings,
            minTlsVersion: web.SupportedTlsVersions.SupportedTlsVersions_1_2,
            scmMinTlsVersion: web.SupportedTlsVersions.SupportedTlsVersions_1_2,
            http20Enabled: true,
        },
        functionAppConfig: {
            // Flex Consumption's form of FUNCTIONS_WORKER_RUNTIME=custom.
            runtime: { name: web.RuntimeName.Custom, version: cfg.functionRuntimeVersion },
            deployment: {
                storage: {
                    type: web.FunctionsDeploymentStorageType.BlobContainer,
                    value: packageUrl,
                    authentication: { type: web.AuthenticationType.UserAssignedIdentity, userAssignedIdentityResourceId: deployIdentity.id },
                },
            },
            scaleAndConcurrency: {
                instanceMemoryMB: cfg.functionInstanceMemoryMb,
                maximumInstanceCount: cfg.functionMaxInstances,
            },
        },
        tags,
    });
    // No username/password publishing: deployments authenticate with Entra ID.
    const ftpPolicy = new web.WebAppFtpAllowed("burst-functions-ftp", { resourceGroupName: rg, name: app.name, allow: false });
    const scmPolicy = new web.WebAppScmAllowed("burst-functions-scm", { resourceGroupName: rg, name: app.name, allow: false });

    const principalId = app.identity.apply((i) => {
        if (!i?.principalId) throw new Error("function app has no system-assigned identity principalId");
        return i.principalId;
    });

    // --- least privilege: the scale set only.
    // Custom roles (`what` gives the id, `title` the display name) and role assignments get
    // stable GUID names, derived like ARM's guid(): unique per resource group (whose name
    // carries a random suffix), unchanged across updates.
    const customRole = (logical: string, what: string, title: string, description: string, actions: readonly string[], dataActions: readonly string[] = []) =>
        new authorization.RoleDefinition(logical, {
            roleDefinitionId: resourceGroup.id.apply((id) => stableGuid(id, "hybrid-burst", what)),
            scope: resourceGroup.id,
            roleName: pulumi.interpolate`hybrid-burst ${title} (${rg})`,
            description,
            roleType: "CustomRole",
            permissions: [{ actions: [...actions], notActions: [], dataActions: [...dataActions], notDataActions: [] }],
            // Custom roles can be assignable at resource-group level at the finest; each
            // role's assignment is what narrows it to one resource.
            assignableScopes: [resourceGroup.id],
        });
    const assignRole = (logical: string, scope: pulumi.Input<string>, roleDefinitionId: pulumi.Input<string>, principal: pulumi.Input<string>, description: string) =>
        new authorization.RoleAssignment(logical, {
            roleAssignmentName: pulumi.all([scope, roleDefinitionId, principal]).apply(([sc, r, p]) => stableGuid(sc, r, p)),
            scope,
            roleDefinitionId,
            principalId: principal,
            principalType: authorization.PrincipalType.ServicePrincipal,
            description,
        });

    const scaleSetRole = customRole(
        "burst-scale-set-operator",
        "scale-set-operator",
        "scale set operator",
        "Read a hybrid-burst Spot scale set and write its capacity. Assigned at the scale set's scope only.",
        SCALE_SET_ACTIONS,
    );
    const scaleSetRoleAssignment = assignRole(
        "burst-functions-scale-set",
        scaleSet.id,
        scaleSetRole.id,
        principalId,
        "hybrid-burst functions: read and resize the Spot scale set",
    );

    // --- storage data rights, each at the narrowest scope that works (see roles.ts).
    const client = authorization.getClientConfigOutput();
    const builtIn = (guid: string) => client.subscriptionId.apply((sub) => builtInRoleId(sub, guid));
    const dataRole = (logical: string, scope: pulumi.Input<string>, role: string, principal: pulumi.Input<string>, description: string) =>
        assignRole(logical, scope, builtIn(role), principal, description);
    const storageRoleAssignments = {
        hostBlobs: dataRole(
            "burst-functions-host-blobs",
            hostStorageAccount.id,
            STORAGE_BLOB_DATA_OWNER,
            principalId,
            "hybrid-burst functions: host storage (AzureWebJobsStorage): timer locks, host keys",
        ),
        hostTables: dataRole(
            "burst-functions-host-tables",
            hostStorageAccount.id,
            STORAGE_TABLE_DATA_CONTRIBUTOR,
            principalId,
            "hybrid-burst functions: host storage (AzureWebJobsStorage): diagnostic events",
        ),
        state: dataRole(
            "burst-functions-state",
            stateContainer.id,
            STORAGE_BLOB_DATA_CONTRIBUTOR,
            principalId,
            "hybrid-burst functions: the state documents (burst-state container only)",
        ),
        package: dataRole(
            "burst-deploy-package",
            packageContainer.id,
            STORAGE_BLOB_DATA_CONTRIBUTOR,
            deployIdentity.principalId,
            "hybrid-burst deployment identity: the app package (app-package container only)",
        ),
    };

    // --- the wake-up queues: the trigger's and the sender's rights on the wake queue (a custom
    // role: no built-in grants Update Message without also deleting and clearing queues), and
    // Put Message on the poison queue, each at its queue's scope; nothing account-wide.
    const wakeQueueRole = customRole(
        "burst-wake-queue-worker",
        "wake-queue-worker",
        "wake queue worker",
        "Send, receive, release and delete the messages of a hybrid-burst wake-up queue. Assigned at the queue's scope only.",
        WAKE_QUEUE_ACTIONS,
        WAKE_QUEUE_DATA_ACTIONS,
    );
    const queueRoleAssignments = {
        wake: assignRole(
            "burst-functions-wake-queue",
            wakeQueue.id,
            wakeQueueRole.id,
            principalId,
            "hybrid-burst functions: the wake-up queue (queue trigger and sender), this queue only",
        ),
        poison: dataRole(
            "burst-functions-wake-poison",
            wakePoisonQueue.id,
            STORAGE_QUEUE_DATA_MESSAGE_SENDER,
            principalId,
            "hybrid-burst functions: move failed wake-ups to the poison queue (add messages only)",
        ),
    };

    let pollingRoleAssignment: authorization.RoleAssignment | undefined;
    if (cfg.allowAsyncOperationPolling) {
        const pollingRole = customRole(
            "burst-operation-reader",
            "operation-reader",
            "operation status reader",
            "Read the status of Compute long-running operations (Azure-AsyncOperation polling).",
            POLLING_ACTIONS,
        );
        pollingRoleAssignment = assignRole(
            "burst-functions-operation-reader",
            resourceGroup.id,
            pollingRole.id,
            principalId,
            "hybrid-burst functions: poll Compute operation status",
        );
    }

    // --- the backstop: Azure's own budget on the resource group.
    const budget = new consumption.Budget(
        "burst-monthly",
        {
            scope: resourceGroup.id,
            amount: cfg.monthlyBudgetUsd,
            category: consumption.CategoryType.Cost,
            timeGrain: consumption.TimeGrainType.Monthly,
            timePeriod: { startDate: cfg.budgetStartDate },
            notifications: Object.fromEntries(
                BUDGET_THRESHOLDS.map((t) => [
                    `Actual_GreaterThanOrEqualTo_${t}_Percent`,
                    {
                        enabled: true,
                        operator: consumption.OperatorType.GreaterThanOrEqualTo,
                        threshold: t,
                        thresholdType: consumption.ThresholdType.Actual,
                        contactEmails: [...cfg.budgetAlertEmails],
                        contactRoles: ["Owner"],
                    },
                ]),
            ),
        },
        // The start month is fixed at creation; a later `pulumi up` must not move it.
        { ignoreChanges: ["timePeriod"] },
    );

    return {
        resourceGroup,
        storageAccount,
        hostStorageAccount,
        wakeQueue,
        wakePoisonQueue,
        wakeQueueUrl,
        stateContainer,
        packageContainer,
        stateUrl,
        vnet,
        nsg,
        subnet,
        scaleSet,
        plan,
        logWorkspace,
        appInsights,
        app,
        appSettings,
        ftpPolicy,
        scmPolicy,
        principalId,
        deployIdentity,
        scaleSetRole,
        scaleSetRoleAssignment,
        wakeQueueRole,
        queueRoleAssignments,
        storageRoleAssignments,
        pollingRoleAssignment,
        budget,
    };
}
