import { useState } from 'preact/hooks';
import { api, ApiError, type User } from '../lib/api';
import type { ThemeChoice } from '../lib/theme';
import { ErrorNote, Field, Loading, Notice, PageHeader, Section, Unavailable, useAsync } from '../components/ui';

export function SettingsPage({ user, theme, setTheme }: { user: User; theme: ThemeChoice; setTheme: (t: ThemeChoice) => void }) {
  const settings = useAsync((signal) => api<Record<string, unknown>>('GET', '/api/settings', undefined, { signal }), []);
  return (
    <div class="page">
      <PageHeader title="Settings" />
      <Section title="Appearance" id="appearance-title">
        <fieldset class="field">
          <legend>Theme</legend>
          <div class="segmented">
            {(['system', 'light', 'dark'] as ThemeChoice[]).map((t) => (
              <label key={t} class={`btn btn-small ${theme === t ? 'active' : ''}`}>
                <input type="radio" name="theme" class="sr-only" value={t} checked={theme === t} onChange={() => setTheme(t)} />
                {t === 'system' ? 'Follow system' : t === 'light' ? 'Light' : 'Dark'}
              </label>
            ))}
          </div>
          <p class="hint">Stored in this browser only.</p>
        </fieldset>
      </Section>
      <PasswordForm user={user} />
      <Section title="Server settings" id="server-settings-title">
        {settings.error instanceof ApiError && settings.error.unavailable ? (
          <Unavailable what="Server settings" />
        ) : settings.error ? (
          <ErrorNote error={settings.error} title="Could not load server settings" />
        ) : !settings.data ? (
          <Loading />
        ) : (
          <SettingsTable data={settings.data} />
        )}
      </Section>
    </div>
  );
}

function SettingsTable({ data }: { data: Record<string, unknown> }) {
  const entries = Object.entries(data && typeof data === 'object' && 'data' in data && typeof data.data === 'object' ? (data.data as Record<string, unknown>) : data);
  if (entries.length === 0) return <p class="muted">The server reported no settings.</p>;
  return (
    <dl class="kv">
      {entries.map(([k, v]) => (
        <div key={k}>
          <dt class="mono">{k}</dt>
          <dd class="mono">{typeof v === 'object' ? JSON.stringify(v) : String(v)}</dd>
        </div>
      ))}
    </dl>
  );
}

function PasswordForm({ user }: { user: User }) {
  const [current, setCurrent] = useState('');
  const [next, setNext] = useState('');
  const [confirm, setConfirm] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [done, setDone] = useState(false);
  const [unavailable, setUnavailable] = useState(false);

  const submit = async (e: Event) => {
    e.preventDefault();
    setError(null);
    setDone(false);
    if (next !== confirm) {
      setError(new Error('The new passwords do not match.'));
      return;
    }
    if (next.length < 8) {
      setError(new Error('The new password needs at least 8 characters.'));
      return;
    }
    setBusy(true);
    try {
      await api('POST', '/api/auth/password', { current_password: current, new_password: next });
      setDone(true);
      setCurrent('');
      setNext('');
      setConfirm('');
    } catch (err) {
      if (err instanceof ApiError && err.unavailable) setUnavailable(true);
      else setError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <Section title={`Password of ${user.username}`} id="password-title">
      {unavailable ? (
        <Unavailable what="Changing your password" />
      ) : (
        <form class="form-grid" onSubmit={submit} aria-labelledby="password-title">
          <input type="text" autocomplete="username" value={user.username} hidden readOnly />
          <Field label="Current password" id="pw-current">
            <input id="pw-current" class="input" type="password" required autocomplete="current-password" value={current} onInput={(e) => setCurrent(e.currentTarget.value)} />
          </Field>
          <Field label="New password" id="pw-new" hint="At least 8 characters.">
            <input id="pw-new" class="input" type="password" required minLength={8} autocomplete="new-password" value={next} onInput={(e) => setNext(e.currentTarget.value)} />
          </Field>
          <Field label="Repeat new password" id="pw-confirm">
            <input id="pw-confirm" class="input" type="password" required autocomplete="new-password" value={confirm} onInput={(e) => setConfirm(e.currentTarget.value)} />
          </Field>
          <div class="form-actions">
            <button class="btn btn-primary" type="submit" disabled={busy}>
              {busy ? 'Saving…' : 'Change password'}
            </button>
          </div>
          <div class="form-feedback">
            <ErrorNote error={error} />
            {done && <Notice kind="ok">Password changed.</Notice>}
          </div>
        </form>
      )}
    </Section>
  );
}
