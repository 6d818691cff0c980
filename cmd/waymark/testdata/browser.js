// What the scripts that drive a page in a browser share: Debian's headless Chromium through
// playwright-core, the journey page's pages and its read key dialog.
const { chromium } = require('playwright-core')

// launch starts Debian's Chromium headless, without the traffic a desktop browser sends on its own.
function launch () {
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-quic', '--disable-sync'],
  })
}

// openPage opens a page of the viewport's size (1280×800 unless given) whose uncaught errors are
// pushed onto errors.
async function openPage (browser, errors, viewport = { width: 1280, height: 800 }) {
  const page = await browser.newPage({ viewport })
  page.on('pageerror', (e) => errors.push(e.message))
  return page
}

// enterKey waits for the journey page to ask for the read key and types it, as a person would.
async function enterKey (page, key) {
  await page.waitForSelector('#key-dialog[open] input[name=key]')
  await page.locator('#key-dialog input[name=key]').fill(key)
  await page.keyboard.press('Enter')
}

module.exports = { launch, openPage, enterKey }
