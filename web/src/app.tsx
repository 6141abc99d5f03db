import { useEffect, useRef, useState } from 'preact/hooks';
import { api, ApiError, errorMessage, onUnauthorized, type User } from './lib/api';
import { linkClick, navigate, usePath } from './lib/router';
import { applyTheme, storedTheme, type ThemeChoice } from './lib/theme';
import { ThemeToggle } from './components/ThemeToggle';
import { live, useLive } from './lib/ws';
import { Loading, Toasts } from './components/ui';
import { LoginPage } from './pages/Login';
import { LivePage } from './pages/Live';
import { KeysPage } from './pages/Keys';
import { GatewayKeysPage } from './pages/GatewayKeys';
import { PlaygroundPage } from './pages/Playground';
import { AnalyticsPage } from './pages/Analytics';
import { ProfilesPage } from './pages/Profiles';
import { ProxiesPage } from './pages/Proxies';
import { RoutingPage } from './pages/Routing';
import { UsersPage } from './pages/Users';
import { SettingsPage } from './pages/Settings';

interface NavItem {
  path: string;
  label: string;
  adminOnly?: boolean;
}

const NAV: NavItem[] = [
  { path: '/', label: 'Live' },
  { path: '/keys', label: 'Provider keys' },
  { path: '/gateway-keys', label: 'Gateway keys' },
  { path: '/playground', label: 'Playground' },
  { path: '/analytics', label: 'Analytics' },
  { path: '/profiles', label: 'Profiles' },
  { path: '/proxies', label: 'Proxies' },
  { path: '/users', label: 'Users', adminOnly: true },
  { path: '/settings', label: 'Settings' },
];

type Auth = { state: 'checking' } | { state: 'out'; reason?: string } | { state: 'in'; user: User } | { state: 'down'; error: string };

export function App() {
  const [auth, setAuth] = useState<Auth>({ state: 'checking' });
  const [theme, setTheme] = useState<ThemeChoice>(storedTheme());
  const path = usePath();

  const check = async () => {
    setAuth({ state: 'checking' });
    try {
      const user = await api<User>('GET', '/api/auth/me', undefined, { quiet401: true });
      setAuth({ state: 'in', user });
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) setAuth({ state: 'out' });
      else setAuth({ state: 'down', error: errorMessage(e) });
    }
  };

  useEffect(() => {
    void check();
    return onUnauthorized(() => setAuth({ state: 'out', reason: 'Your session has expired. Log in again.' }));
  }, []);

  useEffect(() => {
    if (auth.state === 'in') live.start();
    else live.stop();
  }, [auth.state]);

  useEffect(() => {
    if (auth.state === 'in' && path === '/login') navigate('/', true);
  }, [auth.state, path]);

  // After an in-app navigation, move focus to the page so screen readers and keyboard users start at its top.
  const firstPath = useRef(true);
  useEffect(() => {
    if (firstPath.current) {
      firstPath.current = false;
      return;
    }
    document.getElementById('main')?.focus({ preventScroll: true });
  }, [path]);

  const setThemeChoice = (t: ThemeChoice) => {
    applyTheme(t);
    setTheme(t);
  };

  if (auth.state === 'checking') {
    return (
      <main class="center-screen">
        <Loading label="Connecting to the gateway…" />
      </main>
    );
  }
  if (auth.state === 'down') {
    return (
      <main class="center-screen">
        <div class="card narrow" role="alert">
          <h1>Cannot reach the gateway</h1>
          <p>{auth.error}</p>
          <button class="btn btn-primary" type="button" onClick={() => void check()}>
            Try again
          </button>
        </div>
      </main>
    );
  }
  if (auth.state === 'out') {
    return (
      <>
        <LoginPage
          reason={auth.reason}
          onLogin={(user) => {
            setAuth({ state: 'in', user });
            if (path === '/login') navigate('/', true);
          }}
          theme={theme}
          setTheme={setThemeChoice}
        />
        <Toasts />
      </>
    );
  }

  const user = auth.user;
  const isAdmin = user.role === 'admin';
  const logout = async () => {
    try {
      await api('POST', '/api/auth/logout', {}, { quiet401: true });
    } catch {
      /* the cookie is cleared by the server; a failed call still ends the local session */
    }
    setAuth({ state: 'out' });
  };

  let page;
  switch (path) {
    case '/':
    case '/live':
      page = <LivePage />;
      break;
    case '/keys':
      page = <KeysPage />;
      break;
    case '/keys/routing':
      page = <RoutingPage />;
      break;
    case '/gateway-keys':
      page = <GatewayKeysPage />;
      break;
    case '/playground':
      page = <PlaygroundPage />;
      break;
    case '/analytics':
      page = <AnalyticsPage />;
      break;
    case '/profiles':
      page = <ProfilesPage />;
      break;
    case '/proxies':
      page = <ProxiesPage isAdmin={isAdmin} />;
      break;
    case '/users':
      page = isAdmin ? <UsersPage me={user} /> : <NotFound />;
      break;
    case '/settings':
      page = <SettingsPage user={user} theme={theme} setTheme={setThemeChoice} />;
      break;
    default:
      page = <NotFound />;
  }

  return (
    <div class="shell">
      <a class="skip-link" href="#main">
        Skip to content
      </a>
      <header class="topbar">
        <a href="/" class="brand" onClick={linkClick}>
          <span class="brand-mark" aria-hidden="true">
            F
          </span>
          FreeLLMAPI
        </a>
        <div class="topbar-right">
          <LiveBadge />
          <ThemeToggle theme={theme} setTheme={setThemeChoice} />
          <span class="user-name" title={`Logged in as ${user.username} (${user.role})`}>
            {user.username}
          </span>
          <button type="button" class="btn btn-small" onClick={logout}>
            Log out
          </button>
        </div>
      </header>
      <nav class="sidenav" aria-label="Main">
        <ul>
          {NAV.filter((n) => !n.adminOnly || isAdmin).map((n) => {
            const active = n.path === path || (n.path === '/' && path === '/live') || (n.path !== '/' && path.startsWith(`${n.path}/`));
            return (
              <li key={n.path}>
                <a href={n.path} onClick={linkClick} aria-current={active ? 'page' : undefined} class={active ? 'active' : ''}>
                  {n.label}
                </a>
              </li>
            );
          })}
        </ul>
      </nav>
      <main id="main" class="content" tabIndex={-1}>
        {page}
      </main>
      <Toasts />
    </div>
  );
}

function NotFound() {
  return (
    <div class="empty">
      <p class="empty-title">Page not found</p>
      <p>
        <a href="/" onClick={linkClick}>
          Go to the live dashboard
        </a>
      </p>
    </div>
  );
}

function LiveBadge() {
  const { conn, retryAt } = useLive();
  const label =
    conn === 'connected' ? 'live: connected' : conn === 'connecting' ? 'live: connecting' : conn === 'reconnecting' ? 'live: reconnecting' : 'live: off';
  const secs = conn === 'reconnecting' ? Math.max(0, Math.round((retryAt - Date.now()) / 1000)) : 0;
  return (
    <button
      type="button"
      class={`badge live-badge live-${conn}`}
      onClick={() => live.retryNow()}
      title={conn === 'reconnecting' ? `Live updates are disconnected; retrying${secs ? ` in about ${secs} s` : ''}. Click to retry now.` : label}
      aria-label={label}
      data-testid="live-badge"
    >
      <span class="badge-dot" aria-hidden="true" />
      <span>
        live<span class="badge-long">{label.slice(4)}</span>
      </span>
    </button>
  );
}
