// Entry point of the Pulumi program: read the stack config, create the stack, export what
// the deploy steps in infra/README.md need.

import * as pulumi from "@pulumi/pulumi";
import { loadConfig } from "./config";
import { createStack } from "./stack";

const stack = createStack(loadConfig(new pulumi.Config(), new Date()));

export const resourceGroupName = stack.resourceGroup.name;
export const functionAppName = stack.app.name;
export const functionAppHostname = stack.app.defaultHostName;
export const functionPrincipalId = stack.principalId;
export const scaleSetId = stack.scaleSet.id;
export const scaleSetName = stack.scaleSet.name;
export const storageAccountName = stack.storageAccount.name;
export const hostStorageAccountName = stack.hostStorageAccount.name;
export const deployIdentityPrincipalId = stack.deployIdentity.principalId;
export const stateUrl = stack.stateUrl;
export const wakeQueueUrl = stack.wakeQueueUrl;
export const budgetName = stack.budget.name;
