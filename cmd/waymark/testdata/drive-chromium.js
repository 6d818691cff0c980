// Opens a page in Debian's headless Chromium with playwright-core and waits until the page sets
// window.result. Usage: node drive-chromium.js URL
const { chromium } = require('playwright-core')

;(async () => {
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--no-first-run', '--disable-quic', '--disable-sync'],
  })
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
