// Opens the journey map page, picks a date range in its filter (From, To) with the keyboard as a
// person would, and prints as JSON the range of each stages query the page asked the API and what
// each stage card shows; then reloads the page from its address (a shared link) and does it again. A
// screenshot goes to OUTDIR.
// Usage: node drive-range.js BASE_URL OUTDIR READ_KEY FROM TO TIMEZONE (FROM, TO: YYYY-MM-DD;
// TIMEZONE: what to type in the Time zone field)
const { launch, openPage, enterKey } = require('./browser')

const [base, outDir, readKey, from, to, timezone] = process.argv.slice(2)

// cards is what each stage card shows: its numbers as data and the texts a person reads.
async function cards (page) {
  await page.waitForSelector('#map .stage[data-entered]')
  await page.waitForFunction(() => !document.querySelector('#map[aria-busy]'))
  return page.$$eval('#map .stage', (els) => els.map((e) => ({
    stage: e.dataset.stage,
    entered: Number(e.dataset.entered),
    entered_moved_on: Number(e.dataset.enteredMovedOn),
    moved_on: Number(e.dataset.movedOn),
    conversion: e.dataset.conversion,
    move_on: e.querySelector('dd.moved').textContent,
    leave: e.querySelector('dd.drop').textContent,
    flow: e.querySelector('dd.flow') ? e.querySelector('dd.flow').textContent : ''
  })))
}

;(async () => {
  const browser = await launch()
  const errors = []
  const page = await openPage(browser, errors)
  // The one failed request expected: the page's first call, before it has the key (401).
  page.on('console', (m) => { if (m.type() === 'error' && !m.text().includes('401 (Unauthorized)')) errors.push(m.text()) })
  const out = { errors, stagesAsked: [] }
  // The range of every stages query the page sends, alone or in a batch.
  const asked = (p) => out.stagesAsked.push({ from: String(p.from), to: String(p.to), timezone: String(p.timezone) })
  page.on('request', (r) => {
    const u = new URL(r.url())
    if (u.pathname === '/api/v1/stages') asked(Object.fromEntries(u.searchParams))
    if (u.pathname === '/api/v1/batch') {
      for (const q of JSON.parse(r.postData()).queries) if (q.query === 'stages') asked(q.params)
    }
  })
  await page.goto(base + '/')
  await enterKey(page, readKey)
  await cards(page)

  // Pick the range: type the days into the date fields, then Enter.
  out.stagesAsked.length = 0
  await page.locator('#filters input[name=from]').fill(from)
  await page.locator('#filters input[name=to]').fill(to)
  await page.locator('#filters input[name=timezone]').fill(timezone)
  await page.locator('#filters input[name=to]').focus()
  await Promise.all([
    page.waitForResponse((r) => new URL(r.url()).pathname === '/api/v1/batch'),
    page.keyboard.press('Enter')
  ])
  out.cards = await cards(page)
  out.link = page.url()
  await page.locator('#map').screenshot({ path: outDir + '/stages-in-range.png' })

  // The link restores the range as picked, and the same numbers.
  await page.reload()
  out.reloaded = {
    to: await page.$eval('#filters input[name=to]', (e) => e.value),
    timezone: await page.$eval('#filters input[name=timezone]', (e) => e.value),
    cards: await cards(page)
  }

  await browser.close()
  console.log(JSON.stringify(out))
})().catch((e) => {
  console.error(e)
  process.exit(1)
})
