// Opens a page in Debian's headless Chromium with playwright-core and waits until the page sets
// window.result. Usage: node drive-chromium.js URL
const { launch } = require('./browser')

;(async () => {
  const browser = await launch()
  const page = await browser.newPage()
  page.on('pageerror', (e) => console.log('page error:', e.message))
  page.on('requestfailed', (r) => console.log('request failed:', r.url(), r.failure().errorText))
  await page.goto(process.argv[2])
  await page.waitForFunction(() => window.result !== 'pending', null, { timeout: 30000 })
  const result = await page.evaluate(() => window.result)
  await browser.close()
  if (result !== 'done') {
    console.log('page result:', result)
    process.exit(1)
  }
})().catch((e) => {
  console.error(e)
  process.exit(1)
})
