// The browser SDK's entry point (bundled by scripts/build-sdk.ts).
// See docs/sdk.md.
export { createIngestClient } from './client.ts'
export type {
  AnalyticsContext, IngestClient, IngestClientOptions, IngestStats, ProgressInput, Properties, QueueStats, Rejection, Stream,
} from './types.ts'
