// Drives the journey map page in Debian's headless Chromium with playwright-core, with the
// keyboard wherever a person could, and prints what it saw as JSON. Screenshots go to OUTDIR.
// The page asks for READ_KEY; this script first gives it a wrong one.
// Usage: node drive-ui.js BASE_URL OUTDIR READ_KEY
const { launch, openPage, enterKey } = require('./browser')

const [base, outDir, readKey] = process.argv.slice(2)

async function stagesOn (page) {
  await page.waitForSelector('#map .stage[data-entered]')
  return page.$$eval('#map .stage', (els) => els.map((e) => ({
    stage: e.dataset.stage,
    entered: Number(e.dataset.entered),
    moved_on: Number(e.dataset.movedOn),
    nps: e.dataset.nps,
    nps_text: e.querySelector('dd.nps').textContent,
    curve: document.querySelector('#map .curve figcaption').textContent
  })))
}

async function funnelOn (page) {
  await page.waitForSelector('#funnel .funnel-steps')
  return page.$eval('#funnel .funnel-steps', (e) => ({ steps: e.dataset.steps, customers: e.dataset.customers }))
}

;(async () => {
  const browser = await launch()
  const errors = []
  const page = await openPage(browser, errors)
  // The failed requests expected: the calls without a key or with the wrong one (401), and the
  // bad window this script sends at the end (400).
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().includes('400 (Bad Request)') && !m.text().includes('401 (Unauthorized)')) errors.push(m.text())
  })
  const out = { errors, requests: [] }
  // The API calls, as "METHOD PATH" and for a batch its queries' names.
  page.on('request', (r) => {
    const path = new URL(r.url()).pathname
    if (!path.startsWith('/api/v1/')) return
    const batch = r.method() === 'POST' ? ' ' + JSON.parse(r.postData()).queries.map(q => q.query).join(',') : ''
    out.requests.push(r.method() + ' ' + path + batch)
  })

  // The page asks for the key; a wrong one is refused and asked for again.
  await page.goto(base + '/')
  await enterKey(page, 'wrong-' + readKey)
  await page.waitForSelector('#key-dialog[open] .key-error:not([hidden])')
  out.refused = await page.$eval('#key-dialog .key-error', (e) => e.textContent)
  await page.screenshot({ path: outDir + '/read-key.png' })
  await enterKey(page, readKey)
  out.stages = await stagesOn(page)
  out.firstFunnel = await funnelOn(page)
  await page.waitForSelector('#flow .sankey svg')
  out.firstLoad = out.requests.slice()
  await page.screenshot({ path: outDir + '/journey-map-1280x800.png', fullPage: true })

  // Change the funnel with the keyboard: the second step becomes Product Added, then Enter.
  const second = page.locator('#funnel .steps input').nth(1)
  await second.focus()
  await page.keyboard.press('Control+A')
  await page.keyboard.type('Product Added')
  await page.keyboard.press('Enter')
  await page.waitForFunction(() => {
    const e = document.querySelector('#funnel .funnel-steps')
    return e && e.dataset.steps.split(',')[1] === 'Product Added' && !document.querySelector('#funnel[aria-busy]')
  })
  out.changedFunnel = await funnelOn(page)
  await page.locator('#funnel').screenshot({ path: outDir + '/funnel.png' })

  // Hold the product constant, then let it go again: the address keeps it while it is held.
  await page.locator('#funnel input[name=hold]').fill('property:product_id')
  await page.locator('#funnel-form button[type=submit]').click()
  await page.waitForFunction(() => {
    const hint = document.querySelector('#funnel .funnel-result .hint')
    return hint && hint.textContent.includes('property:product_id') && !document.querySelector('#funnel[aria-busy]')
  })
  out.heldFunnel = await funnelOn(page)
  out.heldLink = page.url()
  await page.locator('#funnel input[name=hold]').fill('')
  await page.locator('#funnel-form button[type=submit]').click()
  await page.waitForFunction(() => !document.querySelector('#funnel .funnel-result .hint') && document.querySelector('#funnel .funnel-steps') && !document.querySelector('#funnel[aria-busy]'))

  // Compare the converters of that funnel with those who did not convert: of the funnel shown,
  // though the form's window was edited since and not shown.
  const windowField = page.locator('#funnel input[name=window]')
  await windowField.fill('1h')
  await page.locator('#correlation button.correlate').click()
  await page.waitForFunction(() => document.querySelector('#correlation .correlation-result .hint') && !document.querySelector('#correlation[aria-busy]'))
  out.correlation = await page.$$eval('#correlation tbody tr', (rows) => rows.map((r) => `${r.dataset.value} ${r.dataset.odds} ${r.dataset.success}/${r.dataset.failure}`))
  out.correlationSteps = await page.$eval('#funnel .funnel-steps', (e) => e.dataset.steps)
  await page.locator('#correlation').screenshot({ path: outDir + '/correlation.png' })
  await windowField.fill('24h')

  // A comparison still being answered when the funnel is asked again is not drawn under it.
  const slow = '**/api/v1/correlation?*'
  await page.route(slow, async (route) => { await new Promise((resolve) => setTimeout(resolve, 1000)); await route.continue() })
  await page.locator('#correlation button.correlate').click()
  const answered = page.waitForResponse((r) => r.url().includes('/api/v1/correlation?'))
  await page.locator('#funnel-form button[type=submit]').click()
  await answered
  await page.waitForFunction(() => !document.querySelector('#funnel[aria-busy]'))
  await page.waitForTimeout(300)
  out.staleComparison = await page.$$eval('#correlation tbody tr', (rows) => rows.length)
  await page.unroute(slow)

  // The fork, by keyboard: Tab until a touchpoint of the first stage has focus, then Enter.
  await page.locator('#filters button[type=submit]').focus()
  let focused = ''
  for (let i = 0; i < 40 && !focused; i++) {
    await page.keyboard.press('Tab')
    focused = await page.evaluate(() => document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.touchpoint || '' : '')
  }
  out.keyboardTouchpoint = focused
  await page.keyboard.press('Enter')
  await page.waitForSelector('#fork:not([hidden]) .bars li')
  await page.waitForFunction(() => !document.querySelector('#fork[aria-busy]'))
  out.fork = await page.$eval('#fork', (e) => ({
    title: e.querySelector('h2').textContent,
    persons: Number(e.querySelector('.bars').dataset.persons),
    first: e.querySelector('.bars li .label') ? e.querySelector('.bars li .label').textContent : ''
  }))
  await page.locator('#fork').screenshot({ path: outDir + '/fork.png' })

  // A shared link restores the view.
  out.link = page.url()
  const other = await openPage(browser, errors)
  await other.goto(out.link)
  await enterKey(other, readKey) // another tab: asked again
  out.restoredFunnel = await funnelOn(other)
  await other.waitForSelector('#fork:not([hidden]) .bars li')
  out.restoredFork = await other.$eval('#fork h2', (e) => e.textContent)

  // A narrow screen: stages stack and stay readable, and the wide tables (a breakdown, the
  // comparison) scroll on their own.
  const narrow = await openPage(browser, errors, { width: 360, height: 780 })
  await narrow.goto(base + '/?breakdown=channel')
  await enterKey(narrow, readKey)
  await stagesOn(narrow)
  await narrow.waitForSelector('#funnel .funnel-result table')
  await narrow.locator('#correlation button.correlate').click()
  await narrow.waitForFunction(() => document.querySelector('#correlation .correlation-result .hint') && !document.querySelector('#correlation[aria-busy]'))
  out.narrowOverflow = await narrow.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)
  await narrow.screenshot({ path: outDir + '/journey-map-360x780.png', fullPage: true })

  // A step typed with a comma stays one step: the page escapes it (Checkout\, Step 2), so the
  // API reads the one name, which it has never stored.
  await narrow.locator('#funnel .steps input').first().fill('Checkout, Step 2')
  await narrow.locator('#funnel-form button[type=submit]').click()
  await narrow.waitForSelector('#funnel .status.error')
  out.commaStep = await narrow.$eval('#funnel .status', (e) => e.textContent)

  // A bad step shows the API's message, naming the field.
  await page.locator('#funnel input[name=window]').fill('400d')
  await page.locator('#funnel-form button[type=submit]').click()
  await page.waitForSelector('#funnel .status.error')
  out.error = await page.$eval('#funnel .status', (e) => e.textContent)

  // All that took the key once after the wrong one, twice in all; it stays with the tab (not
  // with the browser) and a reload is not asked again.
  out.asked = await page.$eval('#key-dialog', (e) => Number(e.dataset.asked || 0))
  out.keptIn = await page.evaluate(() => ({ session: sessionStorage.length, local: localStorage.length }))
  await page.reload()
  out.stagesAfterReload = (await stagesOn(page)).length
  out.askedAfterReload = await page.$eval('#key-dialog', (e) => Number(e.dataset.asked || 0))

  await browser.close()
  console.log(JSON.stringify(out))
})().catch((e) => {
  console.error(e)
  process.exit(1)
})
