import { useState } from 'preact/hooks';
import { api, ApiError, errorMessage, type User } from '../lib/api';
import type { ThemeChoice } from '../lib/theme';
import { ThemeToggle } from '../components/ThemeToggle';

export function LoginPage({
  onLogin,
  reason,
  theme,
  setTheme,
}: {
  onLogin: (u: User) => void;
  reason?: string;
  theme: ThemeChoice;
  setTheme: (t: ThemeChoice) => void;
}) {
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const res = await api<{ user: User }>('POST', '/api/auth/login', { username: username.trim(), password }, { quiet401: true });
      onLogin(res.user);
    } catch (err) {
      setError(err instanceof ApiError && err.status === 401 ? 'Wrong username or password.' : errorMessage(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <main class="center-screen login-screen">
      <div class="login-theme">
        <ThemeToggle theme={theme} setTheme={setTheme} />
      </div>
      <form class="card narrow login-card" onSubmit={submit} aria-labelledby="login-title">
        <div class="login-brand">
          <span class="brand-mark" aria-hidden="true">
            F
          </span>
          <h1 id="login-title">FreeLLMAPI</h1>
        </div>
        <p class="muted">Log in to manage provider keys, gateway keys and routing.</p>
        {reason && !error && (
          <div class="note note-warn" role="status">
            {reason}
          </div>
        )}
        {error && (
          <div class="note note-error" role="alert">
            {error}
          </div>
        )}
        <div class="field">
          <label for="login-user">Username</label>
          <input
            id="login-user"
            class="input"
            name="username"
            autocomplete="username"
            autoFocus
            required
            value={username}
            onInput={(e) => setUsername(e.currentTarget.value)}
          />
        </div>
        <div class="field">
          <label for="login-pass">Password</label>
          <input
            id="login-pass"
            class="input"
            type="password"
            name="password"
            autocomplete="current-password"
            required
            value={password}
            onInput={(e) => setPassword(e.currentTarget.value)}
          />
        </div>
        <button type="submit" class="btn btn-primary btn-block" disabled={busy}>
          {busy ? 'Logging in…' : 'Log in'}
        </button>
        <p class="hint">
          The first admin account comes from <code>ADMIN_USERNAME</code> / <code>ADMIN_PASSWORD</code>; without a password one is
          generated and printed in the server log at the first start.
        </p>
      </form>
    </main>
  );
}
