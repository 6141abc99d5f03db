import { effectiveTheme, type ThemeChoice } from '../lib/theme';

export function ThemeToggle({ theme, setTheme }: { theme: ThemeChoice; setTheme: (t: ThemeChoice) => void }) {
  const eff = effectiveTheme(theme);
  const next = eff === 'dark' ? 'light' : 'dark';
  return (
    <button type="button" class="btn btn-small btn-icon" onClick={() => setTheme(next)} aria-label={`Switch to ${next} theme`} title={`Switch to ${next} theme`}>
      <span aria-hidden="true">{eff === 'dark' ? '☀' : '☾'}</span>
    </button>
  );
}

