// wxteams on Azure: the Teams bot registration, Azure Database for PostgreSQL (flexible server),
// and Azure Container Apps running two replicas of the wxteams image.
//
//   az deployment group create -g <resource group> -f infra/bicep/main.bicep \
//     -p @infra/bicep/main.parameters.json
//
// The bot's Entra ID app registration (single tenant, with a client secret) is made beforehand in
// Entra ID (see README.md → Deploying); its app id and secret are parameters here. Secrets are
// passed as secure parameters and stored as Container Apps secrets, never as plain settings.

@description('Short name used in every resource name.')
param name string = 'wxteams'

@description('Azure region.')
param location string = resourceGroup().location

@description('The wxteams container image, e.g. myregistry.azurecr.io/wxteams:1.0.0.')
param image string

@description('The public host name wxteams will be reached at (a custom domain on the container app), without https://.')
param publicHost string

@description('The bot\'s Entra ID app id (single tenant).')
param botAppId string

@description('The Entra ID tenant of the bot and of the employees.')
param tenantId string = subscription().tenantId

@secure()
@description('The bot app\'s client secret.')
param botClientSecret string

@description('The app\'s id in the Teams app catalog (after uploading the package from `wxteams manifest`); empty until then.')
param teamsAppId string = ''

@description('WeChat Official Account AppID (wx…).')
param wechatAppId string

@secure()
param wechatSecret string

@secure()
@minLength(16)
@description('The callback Token set in the Official Account console: 32 random letters and digits (serve refuses fewer than 16).')
param wechatToken string

@secure()
@description('The EncodingAESKey set in the Official Account console (safe mode).')
param wechatAesKey string

@description('The Official Account original id (gh_…).')
param wechatOriginalId string

@secure()
@description('32 random bytes, base64: the archive key-encryption key.')
param archiveKey string

@secure()
@description('32 random bytes, base64: the Ed25519 seed that signs checkpoints and exports.')
param signingKey string

@description('PostgreSQL administrator login.')
param postgresAdmin string = 'wxteams'

@secure()
param postgresPassword string

var suffix = uniqueString(resourceGroup().id)
var pgName = '${name}-pg-${suffix}'
var databaseUrl = 'postgres://${postgresAdmin}:${uriComponent(postgresPassword)}@${postgres.properties.fullyQualifiedDomainName}:5432/wxteams?sslmode=require'

resource logs 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: '${name}-logs-${suffix}'
  location: location
  properties: {
    sku: { name: 'PerGB2018' }
    retentionInDays: 30
  }
}

resource postgres 'Microsoft.DBforPostgreSQL/flexibleServers@2024-08-01' = {
  name: pgName
  location: location
  sku: { name: 'Standard_D2ds_v5', tier: 'GeneralPurpose' }
  properties: {
    version: '15'
    administratorLogin: postgresAdmin
    administratorLoginPassword: postgresPassword
    storage: { storageSizeGB: 64, autoGrow: 'Enabled' }
    backup: { backupRetentionDays: 35, geoRedundantBackup: 'Disabled' }
    highAvailability: { mode: 'ZoneRedundant' }
    network: { publicNetworkAccess: 'Enabled' }
  }
}

resource database 'Microsoft.DBforPostgreSQL/flexibleServers/databases@2024-08-01' = {
  parent: postgres
  name: 'wxteams'
  properties: { charset: 'UTF8', collation: 'en_US.utf8' }
}

// Azure services (the container apps) may reach the server; tighten with a VNet in production.
resource allowAzure 'Microsoft.DBforPostgreSQL/flexibleServers/firewallRules@2024-08-01' = {
  parent: postgres
  name: 'AllowAzureServices'
  properties: { startIpAddress: '0.0.0.0', endIpAddress: '0.0.0.0' }
}

resource environment 'Microsoft.App/managedEnvironments@2024-03-01' = {
  name: '${name}-env-${suffix}'
  location: location
  properties: {
    appLogsConfiguration: {
      destination: 'log-analytics'
      logAnalyticsConfiguration: {
        customerId: logs.properties.customerId
        sharedKey: logs.listKeys().primarySharedKey
      }
    }
  }
}

// Exports written by the compliance API and the export jobs, shared by the replicas.
resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: take('${name}x${suffix}', 24)
  location: location
  kind: 'StorageV2'
  sku: { name: 'Standard_ZRS' }
  properties: { minimumTlsVersion: 'TLS1_2', allowBlobPublicAccess: false, supportsHttpsTrafficOnly: true }
}

resource fileService 'Microsoft.Storage/storageAccounts/fileServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource exportsShare 'Microsoft.Storage/storageAccounts/fileServices/shares@2023-05-01' = {
  parent: fileService
  name: 'exports'
  properties: { shareQuota: 100 }
}

resource exportsStorage 'Microsoft.App/managedEnvironments/storages@2024-03-01' = {
  parent: environment
  name: 'exports'
  properties: {
    azureFile: {
      accountName: storage.name
      accountKey: storage.listKeys().keys[0].value
      shareName: exportsShare.name
      accessMode: 'ReadWrite'
    }
  }
}

resource app 'Microsoft.App/containerApps@2024-03-01' = {
  name: name
  location: location
  properties: {
    managedEnvironmentId: environment.id
    configuration: {
      ingress: {
        external: true
        targetPort: 8080 // the public listener only; 9090 (metrics, pprof) is never exposed
        transport: 'http'
        allowInsecure: false
      }
      secrets: [
        { name: 'database-url', value: databaseUrl }
        { name: 'bot-client-secret', value: botClientSecret }
        { name: 'wechat-secret', value: wechatSecret }
        { name: 'wechat-token', value: wechatToken }
        { name: 'wechat-aes-key', value: wechatAesKey }
        { name: 'archive-key', value: archiveKey }
        { name: 'signing-key', value: signingKey }
      ]
    }
    template: {
      containers: [
        {
          name: 'wxteams'
          image: image
          args: [ 'serve' ]
          resources: { cpu: json('0.5'), memory: '1Gi' }
          env: [
            { name: 'WXTEAMS_LISTEN', value: ':8080' }
            { name: 'WXTEAMS_INTERNAL_LISTEN', value: '127.0.0.1:9090' }
            { name: 'WXTEAMS_PUBLIC_URL', value: 'https://${publicHost}' }
            { name: 'WXTEAMS_DATABASE_URL', secretRef: 'database-url' }
            { name: 'WXTEAMS_EXPORT_DIR', value: '/exports' }
            { name: 'WXTEAMS_BOT_APP_ID', value: botAppId }
            { name: 'WXTEAMS_BOT_TENANT_ID', value: tenantId }
            { name: 'WXTEAMS_BOT_CLIENT_SECRET', secretRef: 'bot-client-secret' }
            { name: 'WXTEAMS_TEAMS_APP_ID', value: teamsAppId }
            { name: 'WXTEAMS_WECHAT_APPID', value: wechatAppId }
            { name: 'WXTEAMS_WECHAT_SECRET', secretRef: 'wechat-secret' }
            { name: 'WXTEAMS_WECHAT_TOKEN', secretRef: 'wechat-token' }
            { name: 'WXTEAMS_WECHAT_AES_KEY', secretRef: 'wechat-aes-key' }
            { name: 'WXTEAMS_WECHAT_ORIGINAL_ID', value: wechatOriginalId }
            { name: 'WXTEAMS_ARCHIVE_KEY', secretRef: 'archive-key' }
            { name: 'WXTEAMS_SIGNING_KEY', secretRef: 'signing-key' }
          ]
          probes: [
            { type: 'Readiness', httpGet: { path: '/readyz', port: 8080 }, periodSeconds: 5 }
            { type: 'Liveness', httpGet: { path: '/healthz', port: 8080 }, periodSeconds: 10 }
            { type: 'Startup', httpGet: { path: '/healthz', port: 8080 }, periodSeconds: 2, failureThreshold: 30 }
          ]
          volumeMounts: [ { volumeName: 'exports', mountPath: '/exports' } ]
        }
      ]
      volumes: [ { name: 'exports', storageType: 'AzureFile', storageName: exportsStorage.name } ]
      scale: { minReplicas: 2, maxReplicas: 4 }
    }
  }
  dependsOn: [ database, allowAzure ]
}

// The Azure Bot registration: Teams sends activities to /api/messages with tokens for botAppId.
resource bot 'Microsoft.BotService/botServices@2022-09-15' = {
  name: '${name}-bot-${suffix}'
  location: 'global'
  kind: 'azurebot'
  sku: { name: 'S1' }
  properties: {
    displayName: 'WeChat'
    endpoint: 'https://${publicHost}/api/messages'
    msaAppId: botAppId
    msaAppType: 'SingleTenant'
    msaAppTenantId: tenantId
  }
}

resource teamsChannel 'Microsoft.BotService/botServices/channels@2022-09-15' = {
  parent: bot
  name: 'MsTeamsChannel'
  location: 'global'
  properties: {
    channelName: 'MsTeamsChannel'
    properties: { isEnabled: true }
  }
}

@description('Point the custom domain publicHost at this, then set the WeChat callback URL to https://<publicHost>/wechat/callback.')
output containerAppFqdn string = app.properties.configuration.ingress.fqdn
output postgresHost string = postgres.properties.fullyQualifiedDomainName
