// Sends N track calls with @segment/analytics-node, using only its documented options (host,
// maxRetries), and fails if any could not be delivered.
// Usage: node analytics-node-retry.js http://HOST:PORT PREFIX N
const { Analytics } = require('@segment/analytics-node')
const [host, prefix, n] = process.argv.slice(2)
const analytics = new Analytics({ writeKey: 'test-key', host, maxEventsInBatch: 5, flushInterval: 100, maxRetries: 10 })
let failed = 0
analytics.on('error', (err) => { failed++; console.error('analytics-node error:', err.code || err.message || err) })
for (let i = 0; i < Number(n); i++) {
  analytics.track({ userId: prefix + (i % 4), event: 'Product Viewed', messageId: prefix + '-' + i })
}
analytics.closeAndFlush({ timeout: 60000 }).then(() => process.exit(failed ? 1 : 0))
