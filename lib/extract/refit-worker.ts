/**
 * The worker thread that runs the least-squares refit (reconstruct.ts) off the caller's JS thread:
 * each request gets its progress messages, then the report or the error.
 */
import { refitInPlace, type RefitRequest } from './reconstruct.js';
import { serveRequests } from '../worker/serve.js';

serveRequests((request: RefitRequest, progress) => refitInPlace(request, progress));
