// End-to-end steps for gateway-key limits and allow-lists, and for truthful provider-key states, run by run.mjs
// with its page, step runner and servers (kept apart so run.mjs stays readable).

/** Reads the gateway keys through the API with the page's session. */
async function gatewayKeysOf(page) {
  return page.evaluate(async () => {
    const r = await fetch('/api/gateway-keys', { credentials: 'same-origin' });
    return (await r.json()).data;
  });
}

async function chat(base, key, model) {
  const r = await fetch(`${base}/v1/chat/completions`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hello' }] }),
  });
  const body = await r.json().catch(() => ({}));
  return { status: r.status, code: body?.error?.code };
}

export async function gatewayKeyLimitSteps({ step, page, nav, base, shoot }) {
  await step('gateway keys: an RPM limit and an allow-list set in the page are shown after a reload and stored by the API', async () => {
    await nav('Gateway keys');
    await page.getByLabel('Name', { exact: true }).fill('limited');
    await page.getByRole('button', { name: 'Create key' }).click();
    const value = page.locator('[data-testid=minted-key-value]');
    await value.waitFor();
    const secret = ((await value.textContent()) ?? '').trim();
    await page.getByRole('button', { name: /I have stored it/ }).click();
    const rowOf = () => page.locator('[data-testid=gateway-key-row]').filter({ has: page.getByRole('button', { name: /^Edit name: limited/ }) });
    let row = rowOf();
    await row.getByText('all models').waitFor();

    // Requests per minute: 5.
    await row.getByRole('button', { name: /Edit requests-per-minute limit/ }).click();
    await row.getByRole('spinbutton', { name: 'requests-per-minute limit' }).fill('5');
    await row.getByRole('spinbutton', { name: 'requests-per-minute limit' }).press('Enter');
    await row.getByRole('button', { name: 'Edit requests-per-minute limit: 5' }).waitFor();

    // Tokens per day: set, then emptied again (= no limit).
    await row.getByRole('button', { name: /Edit tokens-per-day limit/ }).click();
    await row.getByRole('spinbutton', { name: 'tokens-per-day limit' }).fill('100000');
    await row.getByRole('spinbutton', { name: 'tokens-per-day limit' }).press('Enter');
    await row.getByRole('button', { name: 'Edit tokens-per-day limit: 100000' }).waitFor();
    await row.getByRole('button', { name: /Edit tokens-per-day limit/ }).click();
    await row.getByRole('spinbutton', { name: 'tokens-per-day limit' }).fill('');
    await row.getByRole('spinbutton', { name: 'tokens-per-day limit' }).press('Enter');
    await row.getByRole('button', { name: 'Edit tokens-per-day limit: no limit' }).waitFor();

    // Allow-list: "only these" with nothing ticked is refused in words, then mock-model is ticked.
    await row.getByRole('button', { name: /Edit the models limited may use/ }).click();
    const editor = page.getByRole('form', { name: 'Models limited may use' });
    await editor.getByLabel(/Only these/).check();
    await editor.getByRole('button', { name: 'Save models' }).click();
    await editor.getByRole('alert').filter({ hasText: 'at least one model' }).waitFor();
    await editor.getByRole('checkbox', { name: 'mock-model', exact: true }).check();
    await editor.getByRole('button', { name: 'Save models' }).click();
    await editor.waitFor({ state: 'detached' });
    await row.locator('[data-testid=allow-list] .chip', { hasText: 'mock-model' }).waitFor();

    // The gateway applies them: the allowed model answers, another one is refused.
    const allowed = await chat(base, secret, 'mock-model');
    const refused = await chat(base, secret, 'mock-embed');
    if (allowed.status !== 200) throw new Error(`mock-model through the limited key answered ${allowed.status} ${allowed.code ?? ''}`);
    if (refused.status !== 403 || refused.code !== 'model_not_allowed') throw new Error(`mock-embed was not refused (${refused.status} ${refused.code ?? ''})`);

    await page.reload();
    row = rowOf();
    await row.waitFor();
    await row.getByRole('button', { name: 'Edit requests-per-minute limit: 5' }).waitFor();
    await row.getByRole('button', { name: 'Edit tokens-per-day limit: no limit' }).waitFor();
    await row.locator('[data-testid=allow-list] .chip', { hasText: 'mock-model' }).waitFor();
    if (await row.getByText('all models').count()) throw new Error('the row still says "all models" after a reload');
    const meter = row.getByRole('meter', { name: 'Requests this minute' });
    const used = Number(await meter.getAttribute('aria-valuenow'));
    const max = Number(await meter.getAttribute('aria-valuemax'));
    if (max !== 5 || !(used >= 1)) throw new Error(`usage meter shows ${used}/${max}, expected at least 1/5`);

    const stored = (await gatewayKeysOf(page)).find((k) => k.label === 'limited');
    if (!stored) throw new Error('the key is not in GET /api/gateway-keys');
    const list = JSON.stringify(stored.allowed_models);
    if (stored.rpm_limit !== 5 || stored.tpd_limit !== null || list !== '["mock-model"]') {
      throw new Error(`stored rpm_limit=${stored.rpm_limit} tpd_limit=${stored.tpd_limit} allowed_models=${list}`);
    }
    await shoot(page, 'gateway-keys-limits', { width: 1280, scheme: 'light' });
    await shoot(page, 'gateway-keys-limits', { width: 390, scheme: 'dark' });
    await page.setViewportSize({ width: 1280, height: 900 });
    return `stored rpm_limit=5, allowed_models=${list}; usage ${used}/${max} this minute; mock-embed refused with 403`;
  });
}

export async function keyStateSteps({ step, page, nav, mock, shoot }) {
  await step('keys: a key never checked nor used shows "not checked yet" (grey), not healthy, on Keys and Live; a check makes it healthy', async () => {
    const status = await page.evaluate(async (url) => {
      const r = await fetch('/api/keys', {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ platform: 'custom', label: 'Fresh mock', base_url: url, models: ['fresh-model'] }),
      });
      return r.status;
    }, `${mock}/ok/v1`);
    if (status !== 201) throw new Error(`could not add the key (${status})`);
    await nav('Live');
    await nav('Provider keys');
    const row = page.locator('[data-testid=key-row]').filter({ hasText: 'Fresh mock' });
    const state = row.locator('[data-testid=key-state]');
    await state.waitFor();
    const text = ((await state.textContent()) ?? '').trim();
    if ((await state.getAttribute('data-state')) !== 'unknown' || !/not checked yet/.test(text)) throw new Error(`the fresh key's state reads "${text}"`);
    if (await row.locator('.dot-green').count()) throw new Error('the fresh key has a green dot');
    await row.locator('.dot-grey').first().waitFor();
    // The key the mock answered 429 for has never served a request: cooling (with its reason) or back in rotation,
    // never "healthy".
    const cooled = page.locator('[data-testid=key-row]').filter({ hasText: 'Cooling mock' }).locator('[data-testid=key-state]');
    const cooledState = await cooled.getAttribute('data-state');
    const cooledText = ((await cooled.textContent()) ?? '').trim();
    if (cooledState === 'cooling' ? !/cooling: rate-limited/.test(cooledText) : cooledState !== 'recovered') {
      throw new Error(`the 429 key reads "${cooledText}" (${cooledState})`);
    }
    await shoot(page, 'keys-states', { width: 1280, scheme: 'light' });

    await nav('Live');
    const gauge = page.locator('[data-testid=live-key]').filter({ hasText: 'Fresh mock' });
    await gauge.waitFor({ timeout: 8000 });
    const liveState = await gauge.getAttribute('data-state');
    if (liveState !== 'unknown') throw new Error(`the Live page shows the fresh key as "${liveState}"`);
    if (await gauge.locator('.dot-green').count()) throw new Error('the Live page gives the fresh key a green dot');

    await nav('Provider keys');
    await row.getByRole('button', { name: 'Check' }).click();
    await row.locator('[data-testid=key-state][data-state=healthy]').waitFor({ timeout: 15000 });
    return `"${text}" before any use; healthy after Check; the 429 key reads "${cooledText}"`;
  });
}
