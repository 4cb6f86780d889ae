// The node's built-in explorer in headless Chromium (Debian's /usr/bin/chromium, driven by
// playwright-core). Usage:
//   node explorer_check.mjs URL TXHASH SCREENSHOT LIVE_RAW_TX STAKING_TXHASH
// Loads URL/explorer/, waits for the live head (eth_subscribe over WebSocket), submits
// LIVE_RAW_TX through the page's origin and waits for the head to move without a reload, then
// follows TXHASH: search box -> transaction page -> its block -> the sender's account page.
// Then opens STAKING_TXHASH (its envelope, result and module events) and the validators page.
// Screenshots: SCREENSHOT (the transaction page) and SCREENSHOT with "-account" before ".png".
// Every wait is on a condition (a selector or a predicate), never a fixed delay. Prints one JSON
// object (last line) with what the page showed; the Python test checks it against the chain.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";

const [url, txHash, screenshot, liveRawTx, stakingTxHash] = process.argv.slice(2);
if (!stakingTxHash) {
  console.error("usage: node explorer_check.mjs URL TXHASH SCREENSHOT LIVE_RAW_TX STAKING_TXHASH");
  process.exit(2);
}
const origin = new URL(url).origin;
const TIMEOUT_MS = 30_000;

const profile = fs.mkdtempSync(path.join(os.tmpdir(), "cybermiles-chromium-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: "/usr/bin/chromium",
  headless: true, // --headless
  viewport: { width: 1280, height: 900 },
  // Without the background-networking flags a closed network makes Chromium slow to start.
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
const result = { errors: [], external: [] };
try {
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT_MS);
  page.on("pageerror", (error) => result.errors.push(`pageerror: ${error.message}`));
  page.on("console", (message) => {
    if (message.type() === "error") result.errors.push(`console: ${message.text()}`);
  });
  // The page must work offline: nothing but the node's own origin (HTTP and WebSocket).
  page.on("request", (request) => {
    if (new URL(request.url()).origin !== origin && !request.url().startsWith("data:")) {
      result.external.push(request.url());
    }
  });

  // A rendered page: <main> names the page and key and says when it is done.
  async function shown(pageName, key) {
    const handle = await page.waitForFunction(
      ([p, k]) => {
        const view = document.getElementById("view");
        return view.dataset.page === p && view.dataset.key === k && view.dataset.state !== "loading" && view.dataset.state;
      },
      [pageName, key],
    );
    const state = await handle.jsonValue();
    if (state !== "ready") throw new Error(`${pageName} ${key}: ${await page.textContent("#view")}`);
  }
  const text = async (selector) => (await page.textContent(selector)).trim();
  const attr = (selector, name) => page.getAttribute(selector, name);

  await page.goto(`${url}/explorer/`);
  await shown("home", "");
  await page.waitForSelector('#live[data-state="live"][data-head]');
  result.initialHead = Number(await attr("#live", "data-head"));
  result.homeBlocks = await page.locator("#view tr[data-block]").count();

  // The live head moves without a reload: a marker set now must survive.
  await page.evaluate(() => {
    window.__sameDocument = true;
  });
  const sent = await page.evaluate(async (raw) => {
    const response = await fetch("/", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "eth_sendRawTransaction", params: [raw] }),
    });
    return response.json();
  }, liveRawTx);
  if (sent.error) throw new Error(`eth_sendRawTransaction: ${JSON.stringify(sent.error)}`);
  result.liveTx = sent.result;
  await page.waitForFunction(
    (n) => Number(document.getElementById("live").dataset.head) > n,
    result.initialHead,
  );
  result.liveHead = Number(await attr("#live", "data-head"));
  result.liveHeadText = await text("#head-number");
  result.sameDocument = await page.evaluate(() => window.__sameDocument === true);
  // The home page follows the head too.
  await page.waitForSelector(`#view tr[data-block="${result.liveHead}"]`);

  // Search -> transaction page.
  await page.fill("#search-input", txHash);
  await page.press("#search-input", "Enter");
  await shown("tx", txHash.toLowerCase());
  result.tx = {
    status: await text('[data-field="status"] .value'),
    from: await attr('[data-field="from"] a', "data-address"),
    to: await attr('[data-field="to"] a', "data-address"),
    block: await text('[data-field="block"] a'),
    gasUsed: await text('[data-field="gasUsed"] .value'),
    effectiveGasPrice: await text('[data-field="effectiveGasPrice"] .value'),
  };
  const transfer = page.locator('.log .event[data-name="Transfer"]').first();
  result.transfer = {
    count: await page.locator('.log .event[data-name="Transfer"]').count(),
    from: await transfer.locator('[data-arg="from"] a').getAttribute("data-address"),
    to: await transfer.locator('[data-arg="to"] a').getAttribute("data-address"),
    value: (await transfer.locator('[data-arg="value"] .amount').textContent()).trim(),
    raw: await transfer.locator('[data-arg="value"] .amount').getAttribute("data-raw"),
  };
  await page.screenshot({ path: screenshot, fullPage: true });

  // -> its block.
  await page.click('[data-field="block"] a');
  const blockNumber = result.tx.block.replace(/[#,]/g, "");
  await shown("block", blockNumber);
  result.block = {
    number: blockNumber,
    hash: await text('[data-field="hash"] .value'),
    txs: await page.locator("#view tr[data-tx]").evaluateAll((rows) => rows.map((r) => r.dataset.tx)),
  };

  // -> the sender's account page.
  await page.click(`#view tr[data-tx="${txHash.toLowerCase()}"] td.from a`);
  await shown("address", result.tx.from);
  result.account = {
    address: result.tx.from,
    balance: await text('[data-field="balance"] .big-amount'),
    balanceWei: await attr('[data-field="balance"] .big-amount', "data-wei"),
    nonce: await text('[data-field="nonce"] .value'),
    recentTxs: await page.locator("#view a[data-tx]").evaluateAll((links) => links.map((a) => a.dataset.tx)),
  };
  await page.screenshot({ path: screenshot.replace(/\.png$/, "-account.png"), fullPage: true });

  // A staking transaction: its JSON envelope, Travis's result and the module's events.
  await page.evaluate((hash) => {
    location.hash = `#/tx/${hash}`;
  }, stakingTxHash);
  await shown("tx", stakingTxHash.toLowerCase());
  result.staking = {
    kind: await text('[data-field="cmtType"] .value'),
    envelope: JSON.parse(await text('[data-field="envelope"] pre')),
    code: await text('[data-field="code"] .value'),
    events: await page.locator(".log .event").evaluateAll((events) => events.map((e) => e.dataset.name)),
  };

  // The validators page (cmt_queryValidators).
  await page.click('header nav a[href="#/validators"]');
  await shown("validators", "");
  result.validators = await page
    .locator("#view tr[data-validator]")
    .evaluateAll((rows) => rows.map((r) => ({ owner: r.dataset.validator, state: r.children[3].textContent })));
} finally {
  await context.close();
  fs.rmSync(profile, { recursive: true, force: true });
}
console.log(JSON.stringify(result));
