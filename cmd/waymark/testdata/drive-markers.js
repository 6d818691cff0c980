// Opens the journey map page on a view of events whose names and values read like the answers'
// markers ("(exit)", "(none)", …) and prints, as JSON, how the fork, the flow and the funnel's
// breakdown show each entry: its text and whether it is shown as a marker. A screenshot goes to
// OUTDIR.
// Usage: node drive-markers.js URL OUTDIR READ_KEY (URL: the page with its view in the query)
const { launch, openPage, enterKey } = require('./browser')

const [url, outDir, readKey] = process.argv.slice(2)

;(async () => {
  const browser = await launch()
  const errors = []
  const page = await openPage(browser, errors)
  // The one failed request expected: the page's first call, before it has the key (401).
  page.on('console', (m) => { if (m.type() === 'error' && !m.text().includes('401 (Unauthorized)')) errors.push(m.text()) })
  await page.goto(url)
  await enterKey(page, readKey)
  await page.waitForSelector('#fork:not([hidden]) .bars li button')
  await page.waitForSelector('#flow .sankey svg')
  await page.waitForSelector('#funnel table tbody tr')
  await page.waitForFunction(() => !document.querySelector('[aria-busy]'))
  const out = { errors }
  out.fork = await page.$$eval('#fork .bars li button', (els) => els.map((b) => ({
    text: b.querySelector('.label').textContent, marker: b.querySelector('.label').classList.contains('marker'), disabled: b.disabled
  })))
  out.flow = await page.$$eval('#flow .sankey g.node', (els) => els.map((g) => ({
    text: g.querySelector('text').textContent, marker: g.classList.contains('end'), touchpoint: g.dataset.touchpoint || ''
  })))
  out.paths = await page.$$eval('#flow tbody tr td:first-child', (els) => els.map((td) => td.textContent))
  out.breakdown = await page.$$eval('#funnel table tbody th', (els) => els.map((th) => ({
    text: th.textContent, marker: th.classList.contains('marker')
  })))
  await page.screenshot({ path: outDir + '/markers.png', fullPage: true })
  await browser.close()
  console.log(JSON.stringify(out))
})().catch((e) => {
  console.error(e)
  process.exit(1)
})
