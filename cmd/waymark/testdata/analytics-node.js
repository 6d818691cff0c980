// Sends tracking calls with @segment/analytics-node, configured only by its documented host option.
// Usage: node analytics-node.js http://HOST:PORT
const { Analytics } = require('@segment/analytics-node')
const analytics = new Analytics({ writeKey: 'test-key', host: process.argv[2], maxEventsInBatch: 10, flushInterval: 200 })
let failed = false
analytics.on('error', (err) => { failed = true; console.error('analytics-node error:', err) })
for (let i = 0; i < 25; i++) {
  analytics.track({ userId: 'node-' + (i % 5), event: i % 7 ? 'Product Viewed' : 'Order Completed', messageId: 'node-track-' + i,
    properties: { product_id: 'p' + i, price: 9.5 } })
}
analytics.identify({ userId: 'node-1', traits: { customer_type: 'vip' }, messageId: 'node-identify-1' })
analytics.page({ anonymousId: 'anon-node', name: 'Home', properties: { path: '/' }, messageId: 'node-page-1' })
analytics.alias({ userId: 'node-1', previousId: 'anon-node', messageId: 'node-alias-1' })
analytics.closeAndFlush({ timeout: 20000 }).then(() => process.exit(failed ? 1 : 0))
