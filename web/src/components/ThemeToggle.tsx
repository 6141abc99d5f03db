import { useEffect, useState } from 'preact/hooks';
import { effectiveTheme, type ThemeChoice } from '../lib/theme';

export function ThemeToggle({ theme, setTheme }: { theme: ThemeChoice; setTheme: (t: ThemeChoice) => void }) {
  // Re-render when the system scheme changes while we follow it.
  const [, setTick] = useState(0);
  useEffect(() => {
    if (!window.matchMedia) return;
    const mq = window.matchMedia('(prefers-color-scheme: dark)');
    const fn = () => setTick((t) => t + 1);
    mq.addEventListener('change', fn);
    return () => mq.removeEventListener('change', fn);
  }, []);
  const eff = effectiveTheme(theme);
  const next = eff === 'dark' ? 'light' : 'dark';
  return (
    <button type="button" class="btn btn-small btn-icon" onClick={() => setTheme(next)} aria-label={`Switch to ${next} theme`} title={`Switch to ${next} theme`}>
      <span aria-hidden="true">{eff === 'dark' ? '☀' : '☾'}</span>
    </button>
  );
}
