// The XenStore wire client (see client.ts).
export { XenStoreClient, connectXenStore, type XenStoreClientOptions } from './client';
export { chooseEndpoint, socketPath, type Endpoint } from './transport';
