// Waymark journey map: draws the journey from the query API. Every view's state lives in the URL,
// so a view can be shared as a link. No framework, no build step.
'use strict'

const $ = (sel, root = document) => root.querySelector(sel)

// el builds an element; text is always set as text, never parsed as HTML.
function el (tag, attrs = {}, ...children) {
  const e = document.createElement(tag)
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue
    if (k === 'text') e.textContent = v
    else if (k === 'dataset') Object.assign(e.dataset, v)
    else if (k === 'style') e.style.cssText = v // CSSOM, which the page's CSP allows
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v)
    else e.setAttribute(k, v === true ? '' : v)
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c)
  return e
}

const SVG = 'http://www.w3.org/2000/svg'
function svg (tag, attrs = {}) {
  const e = document.createElementNS(SVG, tag)
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v)
  return e
}

const pct = (x) => (100 * x).toFixed(1) + '%'
const num = (n) => Number(n).toLocaleString('en')

function duration (s) {
  if (s === undefined || s === null) return '–'
  const n = Math.round(s)
  if (n < 60) return n + 's'
  if (n < 3600) return Math.floor(n / 60) + 'm' + String(n % 60).padStart(2, '0') + 's'
  if (n < 86400) return Math.floor(n / 3600) + 'h' + String(Math.floor(n % 3600 / 60)).padStart(2, '0') + 'm'
  return Math.floor(n / 86400) + 'd' + String(Math.floor(n % 86400 / 3600)).padStart(2, '0') + 'h'
}

// ---- State in the URL -------------------------------------------------------------------------

const state = new URLSearchParams(location.search)

function saveState () {
  const q = state.toString()
  history.replaceState(null, '', q ? '?' + q : location.pathname)
}

function setState (changes) {
  for (const [k, v] of Object.entries(changes)) {
    if (v === undefined || v === null || v === '') state.delete(k)
    else state.set(k, v)
  }
  saveState()
}

// rangeParams is the date range for the API. The page's To is a day the range includes, as the
// date pickers of PostHog and Amplitude mean it (To 2026-11-30 holds the events of Nov 30); the
// API's to is an end it excludes ([from, to), docs/queries.md), so the page asks up to the next
// day. A to that is no plain day (a time written into a link by hand) goes as it is.
function rangeParams () {
  const p = {}
  if (state.get('from')) p.from = state.get('from')
  if (state.get('to')) p.to = dayAfter(state.get('to'))
  if (state.get('timezone')) p.timezone = state.get('timezone') // the days' zone; none: UTC, as the API
  return p
}

// dayAfter is the day after a YYYY-MM-DD day (UTC, as the API reads a day), or s itself when it
// is no such day (2026-02-31), for the API to name the fault.
function dayAfter (s) {
  const day = new Date(s + 'T00:00:00Z')
  if (!/^\d{4}-\d{2}-\d{2}$/.test(s) || isNaN(day) || day.toISOString().slice(0, 10) !== s) return s
  day.setUTCDate(day.getUTCDate() + 1)
  return day.toISOString().slice(0, 10)
}

// ---- API ----------------------------------------------------------------------------------------

class APIError extends Error {
  constructor (message, param) { super(message); this.param = param }
}

// The query API needs a read key when the server has any. The page asks for it once and keeps
// it for this tab only (sessionStorage), sending it as a Bearer token with every call; a key the
// server refuses (401) is forgotten and asked for again. Without one, calls go without a key (a
// Waymark on loopback without read keys answers them).
const KEY_ITEM = 'waymark-read-key'
let asking = null

// askKey opens the key dialog, once for all the calls waiting, and resolves when a key is given.
function askKey (refused) {
  if (asking) return asking
  asking = new Promise((resolve) => {
    const dialog = $('#key-dialog')
    const form = $('form', dialog)
    $('.key-error', dialog).hidden = !refused
    dialog.dataset.asked = String(Number(dialog.dataset.asked || 0) + 1)
    form.key.value = ''
    form.addEventListener('submit', () => {
      sessionStorage.setItem(KEY_ITEM, form.key.value.trim())
      asking = null
      resolve()
    }, { once: true })
    dialog.showModal()
  })
  return asking
}

async function api (path, params) {
  return call(path + '?' + new URLSearchParams(given(params)).toString(), { method: 'GET' })
}

// given is params without those the page left empty (a cleared window field): those take their
// defaults by being left out, as the API refuses a parameter given empty (it would otherwise
// silently mean the default).
function given (params) {
  return Object.fromEntries(Object.entries(params).filter(([, v]) => v !== '' && v !== undefined && v !== null))
}

// call sends a request to /api/v1/PATH with the read key, asking for it again on a 401, and
// returns the JSON answer; an answer that is not 2xx is thrown as an APIError.
async function call (path, init) {
  for (;;) {
    const key = sessionStorage.getItem(KEY_ITEM)
    const headers = { Accept: 'application/json' }
    if (init.body) headers['Content-Type'] = 'application/json'
    if (key) headers.Authorization = 'Bearer ' + key
    let resp
    try {
      resp = await fetch('/api/v1/' + path, { ...init, headers })
    } catch (e) {
      throw new APIError('Waymark did not answer: ' + e.message)
    }
    if (resp.status === 401) {
      if (sessionStorage.getItem(KEY_ITEM) === key) { // no other call has been given a new key
        sessionStorage.removeItem(KEY_ITEM)
        await askKey(key !== null)
      }
      continue
    }
    let body = null
    try { body = await resp.json() } catch (e) { /* not JSON */ }
    if (!resp.ok) throw failed(resp.status, body, Number(resp.headers.get('Retry-After')))
    return body
  }
}

// failed is the APIError of an answer with status, JSON body (null when not JSON) and the
// seconds it says to wait: a 503 over a query's limits (60) is helped by a shorter range, one of
// a busy server (5) by trying again.
function failed (status, body, retryAfter) {
  let msg = body && body.error ? body.error : 'the server answered ' + status
  if (status === 503) msg += retryAfter >= 60 ? ' — try a shorter range' : ' — try again in a moment'
  return new APIError(msg, body && body.param)
}

// batcher returns an ask like api, which collects the queries asked of it until ask.send()
// sends them in one POST /api/v1/batch: Waymark then reads the events once for all of them.
// Each ask's promise settles with its own query's answer.
function batcher () {
  const asked = []
  const ask = (query, params) => new Promise((resolve, reject) => asked.push({ query, params, resolve, reject }))
  ask.send = async () => {
    if (asked.length === 0) return
    let results
    try {
      const queries = asked.map(a => ({ query: a.query, params: given(a.params) }))
      results = (await call('batch', { method: 'POST', body: JSON.stringify({ queries }) })).results
    } catch (e) {
      for (const a of asked) a.reject(e)
      return
    }
    results.forEach((r, i) => r.status === 200 ? asked[i].resolve(r.result) : asked[i].reject(failed(r.status, r, r.retry_after)))
  }
  return ask
}

// schema holds each query's parameters as the API lists them (/api/v1/queries): the page's
// defaults are the API's.
let schema = {}

// def is the default of a query's parameter.
function def (query, name) {
  const p = (schema[query] || []).find(p => p.name === name)
  return p ? p.default : ''
}

// load runs fn with a section marked busy, showing its errors in the section's status line.
// When current says the section has been asked again since (a newer request), the section is
// left to that one.
async function load (section, label, fn, current = () => true) {
  const status = $('.status', section)
  section.setAttribute('aria-busy', 'true')
  status.classList.remove('error')
  status.textContent = 'Loading ' + label + '…'
  try {
    await fn()
    if (current()) status.textContent = ''
  } catch (e) {
    if (!current()) return
    status.classList.add('error')
    status.textContent = 'Could not load ' + label + ': ' + e.message
  } finally {
    if (current()) section.removeAttribute('aria-busy')
  }
}

// ---- Stages ------------------------------------------------------------------------------------

let stageNames = []
// touchpointSteps maps each touchpoint the page has shown (an event's name, or page or screen) to
// the step that asks about it, as the API gives it beside the name ("step", "steps":
// store.TouchpointStep): the event "event:x" is event\:x, an event named like a stage
// event:NAME. The page sends these steps as they are and escapes no touchpoint itself.
const touchpointSteps = new Map()

// nameOf is the touchpoint a step asks about, as the answers name it; the step itself for one the
// page has not shown (a shared link's fork, before the answers came).
function nameOf (step) {
  for (const [name, s] of touchpointSteps) if (s === step) return name
  return step
}

// loadStages asks for the stages (of ask, api by default) and shows them.
async function loadStages (ask = api) {
  const section = $('#map')
  await load(section, 'the stages', async () => {
    const res = await ask('stages', { ...rangeParams(), limit: 6 })
    stageNames = res.stages.map(s => s.stage)
    const box = $('.stages', section)
    box.replaceChildren()
    res.stages.forEach((s, i) => {
      // Of the people entering in the range, the share who went on before it ends: at most
      // 100%, as Amplitude's and Mixpanel's conversions are. moved_on is the flow out of the
      // stage in the range, whenever its people entered it, and no share of those entering.
      const moved = s.entered ? s.entered_moved_on / s.entered : 0
      const score = s.mean_score === undefined ? '–' : s.mean_score.toFixed(1) + ' (' + num(s.survey_responses) + ')'
      const nps = s.nps === undefined
        ? '–'
        : npsText(s.nps.score) + ' (' + num(s.nps.responses) + ': ' + num(s.nps.promoters) + ' promoters, ' +
          num(s.nps.passives) + ' passives, ' + num(s.nps.detractors) + ' detractors)'
      const list = el('ul', { class: 'touchpoints', 'aria-label': 'Top touchpoints in ' + s.stage })
      for (const t of s.top_touchpoints) {
        touchpointSteps.set(t.value, t.step)
        list.append(el('li', {}, touchpointButton(t.value, t.step, t.share, (share) => pct(share) + ' of the touchpoints in ' + s.stage)))
      }
      box.append(el('article', {
        class: 'stage',
        'aria-labelledby': 'stage-' + i,
        dataset: { stage: s.stage, entered: s.entered, enteredMovedOn: s.entered_moved_on, movedOn: s.moved_on, nps: s.nps === undefined ? '' : s.nps.score, conversion: i + 1 < res.stages.length ? pct(moved) : '' }
      },
      el('h3', { id: 'stage-' + i, text: s.stage }),
      el('dl', {},
        el('dt', { text: 'People entering' }), el('dd', { class: 'entered', text: num(s.entered) }),
        el('dt', { text: 'Move on', title: 'Of the people entering, those who went on to a later stage in the range' }),
        el('dd', { class: 'moved', text: num(s.entered_moved_on) + ' (' + pct(moved) + ')' }),
        el('dt', { text: 'Leave', title: 'Of the people entering, those who had not gone on when the range ends' }),
        el('dd', { class: 'drop', text: num(s.entered - s.entered_moved_on) + ' (' + pct(s.exit_rate) + ')' }),
        // The flow: people who entered before the range move on in it too, so this may be more
        // than the people entering.
        el('dt', { text: 'All moving on in range', title: 'Everyone who went on from this stage in the range, whenever they entered it' }),
        el('dd', { class: 'flow', text: num(s.moved_on) }),
        el('dt', { text: 'Median time in stage', title: 'Of all moving on in the range, from entering the stage' }),
        el('dd', { text: duration(s.median_dwell_seconds) }),
        el('dt', { text: 'Net Promoter Score' }), el('dd', { class: 'nps', text: nps }),
        el('dt', { text: 'Mean survey score' }), el('dd', { class: 'score', text: score })),
      list))
    })
    drawCurve(res.stages)
    fillStepNames()
    fillAnchors()
  })
}

// touchpointButton opens the fork of a touchpoint (its name, and its step); its bar shows the share.
function touchpointButton (name, step, share, describe) {
  return el('button', {
    type: 'button',
    dataset: { touchpoint: step },
    'aria-expanded': state.get('fork') === step ? 'true' : 'false',
    'aria-controls': 'fork',
    title: describe(share),
    onclick: () => openFork(step)
  },
  el('span', { class: 'fill', style: 'width:' + (100 * share).toFixed(1) + '%' }),
  el('span', { class: 'label', text: name }),
  el('span', { class: 'share', text: pct(share) }))
}

// npsText is a Net Promoter Score (−100…100) with its sign, as marketers write it: +33, −14.3.
function npsText (v) {
  const t = Math.abs(v).toFixed(Number.isInteger(v) ? 0 : 1)
  return (v > 0 ? '+' : v < 0 ? '−' : '') + t
}

// drawCurve draws the emotional curve: each stage's Net Promoter Score (−100…100) when any stage
// has NPS answers, else each stage's mean survey score (0–10); the two scales are never mixed.
function drawCurve (stages) {
  const fig = $('#map .curve')
  const byNPS = stages.some(s => s.nps !== undefined)
  const value = (s) => byNPS ? (s.nps && s.nps.score) : s.mean_score
  const scored = stages.filter(s => value(s) !== undefined)
  fig.hidden = scored.length === 0
  if (fig.hidden) return
  $('figcaption', fig).textContent = byNPS
    ? 'The emotional curve: Net Promoter Score in each stage (% promoters − % detractors of the NPS answers, −100 to 100).'
    : 'The emotional curve: mean survey score (Survey Answered: CSAT, CES, …) in each stage, 0 to 10.'
  $('title', fig).textContent = byNPS ? 'Net Promoter Score per stage' : 'Mean survey score per stage'
  const [lo, hi] = byNPS ? [-100, 100] : [0, 10]
  const box = $('svg', fig)
  const title = $('title', box)
  box.replaceChildren(title)
  const w = 1000; const h = 120; const pad = 24
  box.setAttribute('viewBox', `0 0 ${w} ${h}`)
  box.setAttribute('preserveAspectRatio', 'none')
  const x = (i) => pad + (w - 2 * pad) * (stages.length === 1 ? 0.5 : i / (stages.length - 1))
  const y = (score) => h - pad - (h - 2 * pad) * (Math.max(lo, Math.min(hi, score)) - lo) / (hi - lo)
  const points = []
  stages.forEach((s, i) => {
    const v = value(s)
    if (v === undefined) return
    points.push(`${x(i)},${y(v)}`)
    box.append(svg('circle', { cx: x(i), cy: y(v), r: 4 }))
    const label = svg('text', { x: x(i), y: y(v) - 8, 'text-anchor': 'middle' })
    label.textContent = s.stage + ' ' + (byNPS ? npsText(v) : v.toFixed(1))
    box.append(label)
  })
  box.append(svg('polyline', { points: points.join(' ') }))
}

// ---- Fork ---------------------------------------------------------------------------------------

// openFork shows where people go after (or came from before) the touchpoint step asks about.
async function openFork (step, dir, ask = api) {
  dir = dir || state.get('dir') || 'next'
  setState({ fork: step, dir })
  const name = nameOf(step)
  for (const b of document.querySelectorAll('[data-touchpoint]')) {
    b.setAttribute('aria-expanded', b.dataset.touchpoint === step ? 'true' : 'false')
  }
  const section = $('#fork')
  section.hidden = false
  for (const b of section.querySelectorAll('[data-dir]')) b.setAttribute('aria-pressed', b.dataset.dir === dir ? 'true' : 'false')
  $('#fork-title').textContent = (dir === 'next' ? 'After ' : 'Before ') + name
  section.focus()
  await load(section, 'the fork', async () => {
    const res = await ask('next', { anchor: step, direction: dir, window: state.get('window') || def('next', 'window'), limit: 12, collapse: 'true', ...rangeParams() })
    const list = $('.bars', section)
    list.replaceChildren()
    list.dataset.persons = res.persons
    list.setAttribute('aria-label', num(res.persons) + ' people; their ' + (dir === 'next' ? 'next' : 'previous') + ' touchpoint')
    if (res.touchpoints.length === 0) list.append(el('li', { text: 'Nobody did ' + name + ' in this range.' }))
    for (const t of res.touchpoints) {
      const terminal = Boolean(t.marker)
      if (!terminal) touchpointSteps.set(t.value, t.step)
      const label = terminal ? MARKER_TEXT[t.marker] : t.value
      list.append(el('li', {}, el('button', {
        type: 'button',
        disabled: terminal,
        title: terminal ? null : 'Show where people go after ' + t.value,
        onclick: terminal ? null : () => openFork(t.step, dir)
      },
      el('span', { class: 'fill', style: 'width:' + (100 * t.share).toFixed(1) + '%' }),
      el('span', { class: terminal ? 'label marker' : 'label', text: label }),
      el('span', { class: 'share', text: num(t.count) + ' · ' + pct(t.share) }))))
    }
  })
}

function closeFork () {
  $('#fork').hidden = true
  const name = state.get('fork')
  setState({ fork: null, dir: null })
  const opener = name && document.querySelector(`[data-touchpoint="${CSS.escape(name)}"]`)
  for (const b of document.querySelectorAll('[data-touchpoint]')) b.setAttribute('aria-expanded', 'false')
  if (opener) opener.focus()
}

// ---- Flow (Sankey of the top paths) ----------------------------------------------------------------

// MARKER_TEXT is how the page shows an answer's markers (its "marker" fields: no real value there),
// in their own style, so a real event or value that reads "(exit)" or "(none)" is never taken for one.
const MARKER_TEXT = { none: 'no value', other: 'other values', exit: 'left (nothing more)', start: 'arrived here first' }

// pathNodes is a path's touchpoints as nodes {name, step} with its marker, if any, as a node
// {marker} before them (start) or after them (exit).
function pathNodes (p) {
  const nodes = p.touchpoints.map((name, i) => ({ name, step: p.steps[i] }))
  if (p.marker === 'start') nodes.unshift({ marker: p.marker })
  if (p.marker === 'exit') nodes.push({ marker: p.marker })
  return nodes
}

function fillAnchors () {
  const select = $('#flow select[name=anchor]')
  const current = state.get('anchor') || stageNames[0] || ''
  select.replaceChildren(...stageNames.map(n => el('option', { value: n, text: 'stage: ' + n, selected: n === current })))
  for (const [t, step] of touchpointSteps) {
    select.append(el('option', { value: step, text: t, selected: step === current }))
  }
}

async function loadFlow (ask = api) {
  const section = $('#flow')
  const anchor = state.get('anchor') || stageNames[0]
  const depth = state.get('depth') || def('paths', 'depth')
  $('select[name=depth]', section).value = depth
  if (!anchor) return
  await load(section, 'the paths', async () => {
    // A stage by its name, a touchpoint by its step (fillAnchors).
    const res = await ask('paths', { anchor: stageNames.includes(anchor) ? escapeName(anchor) : anchor, depth, limit: 12, collapse: 'true', window: state.get('window') || def('paths', 'window'), ...rangeParams() })
    drawSankey($('.sankey', section), res.paths)
    const body = $('tbody', section)
    body.replaceChildren(...res.paths.map(p => el('tr', {},
      el('td', { text: pathNodes(p).map(n => n.marker ? '(' + MARKER_TEXT[n.marker] + ')' : n.name).join(' → ') }),
      el('td', { class: 'num', text: num(p.persons) }),
      // No convert: the journey map has no stage conversion, so nothing was counted as one.
      el('td', { class: 'num', text: res.convert ? num(p.converted) + ' (' + pct(p.conversion_rate) + ')' : '–' }))))
    section.dataset.paths = res.paths.length
  })
}

function drawSankey (box, paths) {
  box.replaceChildren()
  if (paths.length === 0) {
    box.append(el('p', { text: 'No paths in this range.' }))
    return
  }
  const columns = Math.max(...paths.map(p => pathNodes(p).length))
  const nodes = new Map() // "col\0name" (a marker: "col\1marker") -> {col, name, marker, value}
  const links = new Map() // "a\0b" -> {source, target, value}
  const nodeKey = (col, n) => col + (n.marker ? '\x01' + n.marker : '\0' + n.name)
  for (const p of paths) {
    const steps = pathNodes(p)
    steps.forEach((n, col) => {
      const key = nodeKey(col, n)
      if (!n.marker) touchpointSteps.set(n.name, n.step)
      if (!nodes.has(key)) nodes.set(key, { col, name: n.marker ? MARKER_TEXT[n.marker] : n.name, step: n.step, marker: n.marker, value: 0, out: 0, in: 0 })
      nodes.get(key).value += p.persons
      if (col > 0) {
        const from = nodeKey(col - 1, steps[col - 1])
        const k = from + '\0' + key
        if (!links.has(k)) links.set(k, { source: nodes.get(from), target: nodes.get(key), value: 0 })
        links.get(k).value += p.persons
      }
    })
  }
  const w = 1000; const h = 380; const nodeW = 12; const gap = 10; const labelRoom = 150
  const colX = (c) => 4 + (w - nodeW - labelRoom) * (columns === 1 ? 0 : c / (columns - 1))
  const byCol = []
  for (const n of nodes.values()) (byCol[n.col] = byCol[n.col] || []).push(n)
  const maxTotal = Math.max(...byCol.map(ns => ns.reduce((s, n) => s + n.value, 0) + gap * (ns.length - 1)))
  const scale = (h - 20) / maxTotal
  for (const ns of byCol) {
    ns.sort((a, b) => b.value - a.value)
    let y = 10
    for (const n of ns) {
      n.x = colX(n.col); n.y = y; n.h = Math.max(2, n.value * scale)
      y += n.h + gap
    }
  }
  const root = svg('svg', { viewBox: `0 0 ${w} ${h}`, role: 'img', 'aria-label': 'Flow of the top paths' })
  const sorted = [...links.values()].sort((a, b) => b.value - a.value)
  for (const l of sorted) {
    const t = l.value * scale
    const sy = l.source.y + l.source.out + t / 2
    const ty = l.target.y + l.target.in + t / 2
    l.source.out += t; l.target.in += t
    const x0 = l.source.x + nodeW; const x1 = l.target.x; const mx = (x0 + x1) / 2
    const path = svg('path', { class: 'link', d: `M${x0},${sy} C${mx},${sy} ${mx},${ty} ${x1},${ty}`, 'stroke-width': Math.max(1, t) })
    const title = svg('title', {})
    title.textContent = `${l.source.name} → ${l.target.name}: ${num(l.value)} people`
    path.append(title)
    root.append(path)
  }
  for (const n of nodes.values()) {
    const terminal = Boolean(n.marker)
    const g = svg('g', { class: 'node' + (terminal ? ' end' : ''), tabindex: terminal ? -1 : 0, role: terminal ? 'img' : 'button', 'aria-label': `${n.name}, step ${n.col + 1}: ${num(n.value)} people` })
    g.append(svg('rect', { x: n.x, y: n.y, width: nodeW, height: n.h }))
    const label = svg('text', { x: n.x + nodeW + 4, y: n.y + n.h / 2 + 4 })
    label.textContent = `${n.name} (${num(n.value)})`
    g.append(label)
    if (!terminal) {
      g.dataset.touchpoint = n.step
      g.addEventListener('click', () => openFork(n.step))
      g.addEventListener('keydown', (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); openFork(n.step) } })
    }
    root.append(g)
  }
  box.append(root)
}

// ---- Steps: the escapes of store/steps.go ----------------------------------------------------------

// escapeName writes a stage's name as a step that means exactly it: a backslash before each
// character the step syntax gives a meaning to, and before white space at its ends (which a step
// would otherwise drop), as store.EscapeStep does. (A touchpoint's step comes from the API:
// touchpointSteps.)
function escapeName (name) {
  return name.replace(/[,;|[\]=<>^~!:\\]/g, '\\$&').replace(/^\s+|\s+$/g, (s) => s.replace(/[\s\S]/g, '\\$&'))
}

// stepParam is what one funnel input sends as an entry of steps: a stage's name escaped whole, a
// touchpoint's name as its step (touchpointSteps); a step typed by hand, which may carry [filters], with its unescaped commas escaped, so
// that it stays one step ("Checkout, Step 2", "Product Viewed[city=Washington, D.C.]"), and a
// backslash at its end doubled, so that it escapes no comma after it (store.JoinSteps).
function stepParam (text) {
  if (stageNames.includes(text)) return escapeName(text)
  if (touchpointSteps.has(text)) return touchpointSteps.get(text)
  return text.replace(/\\[\s\S]|\\$|,/g, (m) => m === ',' ? '\\,' : m === '\\' ? '\\\\' : m)
}

// splitSteps cuts a steps list at its unescaped commas into the funnel's inputs, an escaped
// comma read back as a comma (stepParam escapes it again).
function splitSteps (list) {
  const out = ['']
  for (let i = 0; i < list.length; i++) {
    if (list[i] === '\\' && i + 1 < list.length) {
      out[out.length - 1] += list[i + 1] === ',' ? ',' : list[i] + list[i + 1]
      i++
    } else if (list[i] === ',') {
      out.push('')
    } else {
      out[out.length - 1] += list[i]
    }
  }
  return out.filter((s) => s.trim() !== '')
}

// ---- Funnel --------------------------------------------------------------------------------------

function fillStepNames () {
  const list = $('#step-names')
  // A touchpoint named like a stage is offered as its step (event:NAME): its name is the stage's.
  const touchpoints = [...touchpointSteps].map(([name, step]) => stageNames.includes(name) ? step : name)
  list.replaceChildren(...[...stageNames, ...touchpoints].map(n => el('option', { value: n })))
}

function stepInput (value) {
  const li = el('li', {},
    el('input', { name: 'step', value, list: 'step-names', 'aria-label': 'Step', required: true }),
    ' ',
    el('button', { type: 'button', 'aria-label': 'Remove this step', text: '✕', onclick: () => { if ($('#funnel .steps').children.length > 1) li.remove() } }))
  return li
}

function funnelFormFromState () {
  const steps = state.get('steps') ? splitSteps(state.get('steps')) : stageNames.slice(0, 3)
  $('#funnel .steps').replaceChildren(...steps.map(stepInput))
  const form = $('#funnel-form')
  form.window.value = state.get('window') || def('funnel', 'window')
  form.mode.value = state.get('mode') || def('funnel', 'mode')
  form.count_by.value = state.get('count_by') || def('funnel', 'count_by')
  form.hold.value = state.get('hold') || ''
  form.breakdown.value = state.get('breakdown') || ''
}

// funnelParams is the funnel form's parameters, those left empty left out.
function funnelParams () {
  const form = $('#funnel-form')
  const steps = [...form.querySelectorAll('input[name=step]')].map(i => i.value.trim()).filter(Boolean)
  const params = { steps: steps.map(stepParam).join(','), window: form.window.value.trim(), mode: form.mode.value, count_by: form.count_by.value, hold: form.hold.value.trim(), breakdown: form.breakdown.value.trim(), ...rangeParams() }
  if (!params.hold) delete params.hold
  if (!params.breakdown) delete params.breakdown
  return params
}

// markInvalid marks the funnel form's field that an API error names.
function markInvalid (e) {
  const form = $('#funnel-form')
  const field = e.param === 'steps' ? form.querySelector('input[name=step]') : (e.param && form.elements[e.param])
  if (field && field.setAttribute) field.setAttribute('aria-invalid', 'true')
}

// shownFunnel is the parameters of the funnel on screen, set when its answer is drawn: the
// comparison is of it, not of the form as edited since (tester 41's F2).
let shownFunnel = null
// comparisons counts the comparisons asked, and the funnels shown, so that an answer to an
// earlier comparison is never drawn under a newer funnel or over a newer comparison (F1).
let comparisons = 0

// clearComparison empties the comparison panel and drops the comparison being asked, if any.
function clearComparison () {
  comparisons++
  const section = $('#correlation')
  $('.correlation-result', section).replaceChildren()
  $('.status', section).textContent = ''
  section.removeAttribute('aria-busy')
}

async function loadFunnel (ask = api) {
  const form = $('#funnel-form')
  const params = funnelParams()
  setState({ steps: params.steps, window: params.window, mode: params.mode === def('funnel', 'mode') ? null : params.mode, count_by: params.count_by === def('funnel', 'count_by') ? null : params.count_by, hold: params.hold || '', breakdown: params.breakdown || '' })
  const section = $('#funnel')
  for (const i of form.querySelectorAll('[aria-invalid]')) i.removeAttribute('aria-invalid')
  clearComparison() // it was of the funnel before
  await load(section, 'the funnel', async () => {
    let res
    try {
      res = await ask('funnel', params)
    } catch (e) {
      markInvalid(e)
      throw e
    }
    renderFunnel($('.funnel-result', section), res)
    shownFunnel = params
  })
}

// loadCorrelation asks for the correlation analysis of the funnel shown (a breakdown ranks its
// values) and shows it.
async function loadCorrelation () {
  clearComparison()
  const asked = comparisons
  const current = () => asked === comparisons
  for (const i of $('#funnel-form').querySelectorAll('[aria-invalid]')) i.removeAttribute('aria-invalid')
  await load($('#correlation'), 'the comparison', async () => {
    if (!shownFunnel) throw new APIError('show a funnel first')
    let res
    try {
      if (shownFunnel.hold) throw new APIError('a comparison holds no property constant: clear "Hold constant" above and show the funnel again', 'hold')
      res = await api('correlation', shownFunnel)
    } catch (e) {
      if (current()) markInvalid(e)
      throw e
    }
    if (current()) renderCorrelation($('#correlation .correlation-result'), res)
  }, current)
}

function renderCorrelation (box, res) {
  const unit = res.count_by === 'sessions' ? 'sessions' : 'people'
  const what = res.breakdown ? 'values' : 'touchpoints'
  const parts = [el('p', { class: 'hint', text: `${num(res.success_total)} ${unit} converted, ${num(res.failure_total)} did not` + (res.skewed ? ' — one side has over ten times the other (or none): the odds ratios say little' : '') })]
  if (res.events.length > 0) {
    parts.push(el('div', { class: 'table-wrap' }, el('table', {},
      el('caption', { text: 'Odds ratio over 1: more common among those who converted; under 1: among those who did not' }),
      el('thead', {}, el('tr', {}, el('th', { scope: 'col', text: res.breakdown || 'touchpoint' }), el('th', { scope: 'col', class: 'num', text: 'odds ratio' }),
        el('th', { scope: 'col', class: 'num', text: 'converted' }), el('th', { scope: 'col', class: 'num', text: 'did not' }))),
      el('tbody', {}, ...res.events.map(e => el('tr', { class: e.correlation_type, dataset: { value: e.marker ? '(' + e.marker + ')' : e.value, odds: e.odds_ratio, success: e.success_count, failure: e.failure_count } },
        e.marker ? el('th', { scope: 'row', class: 'marker', text: MARKER_TEXT[e.marker] }) : el('th', { scope: 'row', text: e.value }),
        el('td', { class: 'num', text: e.odds_ratio.toLocaleString('en', { maximumFractionDigits: 4 }) }), // the API's 4 decimals
        el('td', { class: 'num', text: num(e.success_count) }), el('td', { class: 'num', text: num(e.failure_count) })))))))
  } else {
    parts.push(el('p', { class: 'hint', text: 'No ' + what + ' to compare.' }))
  }
  if (res.left_out > 0) parts.push(el('p', { class: 'hint', text: `${num(res.left_out)} more ${what} left out: each of too few ${unit} to tell (fewer than 25, or than 2% of them if that is fewer)` }))
  box.replaceChildren(...parts)
}

function renderFunnel (box, res) {
  const first = res.steps[0] ? res.steps[0].customers : 0
  const unit = res.count_by === 'sessions' ? 'sessions' : 'people'
  const rows = res.steps.map((s, i) => el('div', {
    class: 'step-result' + (s.largest_drop_off ? ' largest' : ''),
    dataset: { step: s.name, customers: s.customers }
  },
  el('span', { class: 'name', text: (i + 1) + '. ' + s.name }),
  el('div', { class: 'bar', role: 'img', 'aria-label': `${num(s.customers)} ${unit}, ${pct(s.conversion_from_first)} of the first step` },
    el('span', { style: 'width:' + (first ? 100 * s.customers / first : 0).toFixed(1) + '%' }),
    el('b', { text: num(s.customers) + ' · ' + pct(s.conversion_from_first) })),
  el('span', { class: 'facts' },
    i > 0 ? pct(s.conversion_from_previous) + ' of the previous step · median ' + duration(s.median_seconds_from_previous) + ', p90 ' + duration(s.p90_seconds_from_previous) : 'everyone who started',
    i + 1 < res.steps.length ? el('span', { class: 'drop', text: ' · ' + num(s.drop_off) + ' leave (' + pct(s.drop_off_rate) + ')' + (s.largest_drop_off ? ' — the largest drop-off' : '') }) : null)))
  const parts = res.hold ? [el('p', { class: 'hint', text: 'Holding ' + res.hold + ' constant: each step by events of one value of it' })] : []
  parts.push(el('div', { class: 'funnel-steps', dataset: { steps: res.steps.map(s => s.name).join(','), customers: res.steps.map(s => s.customers).join(',') } }, ...rows))
  const converted = (res.time_to_convert || []).reduce((n, b) => n + b.count, 0)
  if (converted > 0) {
    const max = Math.max(...res.time_to_convert.map(b => b.count))
    parts.push(el('h3', { text: 'Time to convert, first step to last (' + num(converted) + ' ' + unit + ')' }))
    parts.push(el('div', { class: 'histogram-wrap' }, el('div', { class: 'histogram', role: 'img', 'aria-label': res.time_to_convert.map(b => b.label + ': ' + b.count).join(', ') },
      ...res.time_to_convert.map(b => el('div', { style: 'height:' + (100 * b.count / max).toFixed(1) + '%' }, el('b', { text: num(b.count) }), el('span', { text: b.label }))))))
  }
  if (res.breakdown_groups) {
    const table = el('div', { class: 'table-wrap' }, el('table', {},
      el('caption', { text: 'By ' + res.breakdown + (['channel', 'campaign'].includes(res.breakdown) ? " (of the first step's visit)" : ' (value at the first step)') }),
      el('thead', {}, el('tr', {}, el('th', { scope: 'col', text: res.breakdown }),
        ...res.steps.map(s => el('th', { scope: 'col', class: 'num', text: s.name })), el('th', { scope: 'col', class: 'num', text: 'conversion' }))),
      el('tbody', {}, ...res.breakdown_groups.map(g => el('tr', {},
        g.marker ? el('th', { scope: 'row', class: 'marker', text: MARKER_TEXT[g.marker] }) : el('th', { scope: 'row', text: g.value }),
        ...g.steps.map(s => el('td', { class: 'num', text: num(s.customers) })),
        el('td', { class: 'num', text: pct(g.steps[g.steps.length - 1].conversion_from_first) }))))))
    parts.push(table)
  }
  box.replaceChildren(...parts)
}

// ---- Wiring ----------------------------------------------------------------------------------------

// loadAll loads every panel in one batch, so Waymark reads the events once for all of them. The
// flow and the funnel start from the journey map's stages, read first (once) from /api/v1/map.
async function loadAll () {
  if (stageNames.length === 0) {
    try {
      stageNames = (await api('map', {})).stages.map(s => s.name)
    } catch (e) {
      const status = $('#map .status')
      status.classList.add('error')
      status.textContent = 'Could not read the journey map: ' + e.message
      return
    }
  }
  if (!state.get('steps') || !$('#funnel .steps').children.length) funnelFormFromState()
  const ask = batcher()
  const loaded = Promise.all([loadStages(ask), loadFlow(ask), loadFunnel(ask), state.get('fork') ? openFork(state.get('fork'), state.get('dir'), ask) : null])
  await ask.send()
  await loaded
}

document.addEventListener('DOMContentLoaded', async () => {
  const filters = $('#filters')
  filters.from.value = state.get('from') || ''
  filters.to.value = state.get('to') || ''
  filters.timezone.value = state.get('timezone') || ''
  if (Intl.supportedValuesOf) {
    $('#timezones').replaceChildren(...Intl.supportedValuesOf('timeZone').map(z => el('option', { value: z })))
  }
  filters.addEventListener('submit', (e) => {
    e.preventDefault()
    const zone = filters.timezone.value.trim()
    setState({ from: filters.from.value, to: filters.to.value, timezone: zone === 'UTC' ? '' : zone })
    loadAll()
  })
  $('#copy-link').addEventListener('click', async (e) => {
    try {
      await navigator.clipboard.writeText(location.href)
      e.target.textContent = 'Link copied'
    } catch (err) {
      e.target.textContent = 'Copy the address bar'
    }
    setTimeout(() => { e.target.textContent = 'Copy link' }, 2000)
  })
  $('#funnel-form').addEventListener('submit', (e) => { e.preventDefault(); loadFunnel() })
  $('#correlation .correlate').addEventListener('click', () => loadCorrelation())
  $('#funnel .add-step').addEventListener('click', () => {
    const li = stepInput('')
    $('#funnel .steps').append(li)
    $('input', li).focus()
  })
  $('#flow .flow-controls').addEventListener('change', (e) => {
    setState({ [e.target.name]: e.target.value })
    loadFlow()
  })
  for (const b of document.querySelectorAll('#fork [data-dir]')) b.addEventListener('click', () => openFork(state.get('fork'), b.dataset.dir))
  $('#fork .close').addEventListener('click', closeFork)
  document.addEventListener('keydown', (e) => { if (e.key === 'Escape' && !$('#fork').hidden) closeFork() })
  $('#key-dialog').addEventListener('cancel', (e) => e.preventDefault()) // the page needs the key
  try {
    schema = await api('queries', {})
  } catch (e) {
    $('#funnel .status').textContent = 'Could not read the queries\' parameters: ' + e.message
  }
  funnelFormFromState()
  loadAll()
})
