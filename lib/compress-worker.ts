/**
 * The worker thread that runs compress jobs (compress-job.ts) off the caller's JS thread, one at a
 * time: each request { input, options } gets its progress steps, then the summary or the error
 * (compress.ts keeps an idle worker for a while, so repeated calls skip the start-up).
 */
import { runCompress } from './compress-job.js';
import type { CompressRequest } from './compress.js';
import { serveRequests } from './worker/serve.js';

serveRequests(({ input, options }: CompressRequest, progress) => runCompress(input, options, progress));
