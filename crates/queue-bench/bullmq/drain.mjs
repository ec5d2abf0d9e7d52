// BullMQ's drain of the same shape as queue-core's `drain` stage: enqueue N
// no-op jobs with addBulk, then one Worker (concurrency like ours) drains them.
// Prints `key=value` figures on stdout, progress as `# ...` lines on stderr.
// Redis CPU is used_cpu_sys + used_cpu_user from INFO cpu around the drain, as
// the Rust suite measures it; completed jobs are kept like queue-core's default
// done retention (the last 1,000). Works under its own key prefix and
// obliterates the queue, then deletes anything left under the prefix.
//
//   REDIS_URL=redis://127.0.0.1:6379 node drain.mjs [--jobs N] [--concurrency C]
import { createRequire } from 'node:module';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';

const require = createRequire(import.meta.url);
const bullmqVersion = require('bullmq/package.json').version;

function option(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const v = Number(process.argv[i + 1]);
  if (!Number.isInteger(v) || v <= 0) throw new Error(`--${name} needs a positive integer`);
  return v;
}

const jobs = option('jobs', 100000);
const concurrency = option('concurrency', 100);
const url = new URL(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
const connection = {
  host: url.hostname,
  port: Number(url.port || 6379),
  username: url.username ? decodeURIComponent(url.username) : undefined,
  password: url.password ? decodeURIComponent(url.password) : undefined,
  db: url.pathname.length > 1 ? Number(url.pathname.slice(1)) : 0,
  // BullMQ's workers require it (blocking commands must not be retried).
  maxRetriesPerRequest: null,
};
const prefix = `bullbench-${process.pid}-${Math.random().toString(16).slice(2, 10)}`;
const name = 'drain';
// Same size as the Rust suite's no-op payload.
const data = { p: 'xxxxxxxxxxxxxxxx' };
const keep = { count: 1000 };

const figure = (key, value) => process.stdout.write(`${key}=${value}\n`);
const note = (line) => process.stderr.write(`# ${line}\n`);

const queue = new Queue(name, { connection, prefix });
// Our own connection for INFO and the cleanup, apart from BullMQ's.
const client = new Redis(connection);

async function redisCpuS() {
  const info = await client.info('cpu');
  const field = (k) => Number(info.match(new RegExp(`^${k}:([0-9.]+)`, 'm'))[1]);
  return field('used_cpu_sys') + field('used_cpu_user');
}

async function cleanup() {
  await queue.obliterate({ force: true });
  // Anything obliterate left (worker metadata, markers): delete it by prefix.
  let cursor = '0';
  do {
    const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    if (keys.length > 0) await client.del(...keys);
    cursor = next;
  } while (cursor !== '0');
}

let worker;
try {
  note(`bullmq ${bullmqVersion}, key prefix ${prefix}, ${jobs} jobs, concurrency ${concurrency}`);
  const cpu0 = await redisCpuS();
  let started = process.hrtime.bigint();
  for (let left = jobs; left > 0; ) {
    const chunk = Math.min(left, 1000);
    await queue.addBulk(
      Array.from({ length: chunk }, () => ({ name: 'bench.noop', data, opts: { removeOnComplete: keep } })),
    );
    left -= chunk;
  }
  const enqueueS = Number(process.hrtime.bigint() - started) / 1e9;
  const cpu1 = await redisCpuS();

  let completed = 0;
  let failed = 0;
  let done;
  const finished = new Promise((resolve) => (done = resolve));
  const cpuWorker0 = process.cpuUsage();
  started = process.hrtime.bigint();
  worker = new Worker(name, async () => {}, { connection, prefix, concurrency });
  worker.on('completed', () => {
    completed += 1;
    if (completed + failed === jobs) done();
  });
  worker.on('failed', () => {
    failed += 1;
    if (completed + failed === jobs) done();
  });
  const deadline = setTimeout(() => done(new Error('timeout')), 180_000);
  const timedOut = await finished;
  clearTimeout(deadline);
  const drainS = Number(process.hrtime.bigint() - started) / 1e9;
  const cpu2 = await redisCpuS();
  const cpuWorker = process.cpuUsage(cpuWorker0);
  if (timedOut) throw new Error(`gave up after 180 s: ${completed} of ${jobs} completed`);
  if (failed > 0) throw new Error(`${failed} jobs failed`);

  figure('bullmq_enqueue_jobs_per_s', Math.round(jobs / enqueueS));
  figure('bullmq_enqueue_redis_cpu_us_per_job', (((cpu1 - cpu0) * 1e6) / jobs).toFixed(2));
  figure('bullmq_drain_jobs_per_s', Math.round(jobs / drainS));
  figure('bullmq_redis_cpu_us_per_job', (((cpu2 - cpu1) * 1e6) / jobs).toFixed(2));
  // The node process runs the producer's idle connection too; it does nothing meanwhile.
  figure('bullmq_worker_cpu_us_per_job', ((cpuWorker.user + cpuWorker.system) / jobs).toFixed(2));
  note(`bullmq drain: ${drainS.toFixed(2)} s`);
} finally {
  if (worker) await worker.close();
  await cleanup();
  await queue.close();
  client.disconnect();
}
