import { useState } from 'preact/hooks';
import { api, ApiError, listOf, type User } from '../lib/api';
import { formatDateTime, formatRelative, toMs } from '../lib/format';
import { ConfirmButton, Empty, ErrorNote, Field, InlineEdit, LoadState, PageHeader, Section, Switch, toast, Unavailable, useAsync } from '../components/ui';

export function UsersPage({ me }: { me: User }) {
  const users = useAsync((signal) => api<unknown>('GET', '/api/users', undefined, { signal }).then((b) => listOf<User>(b)), []);
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [role, setRole] = useState<'user' | 'admin'>('user');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);

  if (users.error instanceof ApiError && users.error.unavailable) {
    return (
      <div class="page">
        <PageHeader title="Users" />
        <Unavailable what="User management" />
      </div>
    );
  }

  const create = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const u = await api<User>('POST', '/api/users', { username: username.trim(), password, role });
      users.setData((l) => [...(l ?? []), u]);
      toast(`Created ${u.username}`);
      setUsername('');
      setPassword('');
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  const replace = (u: User) => users.setData((l) => (l ?? []).map((x) => (x.id === u.id ? { ...x, ...u } : x)));

  return (
    <div class="page">
      <PageHeader title="Users" />
      <p class="lede">Each user has their own provider keys, gateway keys, profiles and history. Admins can manage users.</p>
      <Section title="Add a user" id="user-add-title">
        <form class="form-grid" onSubmit={create} aria-labelledby="user-add-title">
          <Field label="Username" id="nu-name">
            <input id="nu-name" class="input" required autocomplete="off" value={username} onInput={(e) => setUsername(e.currentTarget.value)} />
          </Field>
          <Field label="Password" id="nu-pass" hint="At least 8 characters.">
            <input id="nu-pass" class="input" type="password" required minLength={8} autocomplete="new-password" value={password} onInput={(e) => setPassword(e.currentTarget.value)} />
          </Field>
          <Field label="Role" id="nu-role">
            <select id="nu-role" class="input" value={role} onChange={(e) => setRole(e.currentTarget.value as 'user' | 'admin')}>
              <option value="user">User</option>
              <option value="admin">Admin</option>
            </select>
          </Field>
          <div class="form-actions">
            <button class="btn btn-primary" type="submit" disabled={busy}>
              {busy ? 'Adding…' : 'Add user'}
            </button>
          </div>
        </form>
        <ErrorNote error={error} title="Could not add the user" />
      </Section>
      <Section title="Users" id="users-title">
        <LoadState a={users} what="Users" />
        {users.data && users.data.length === 0 && <Empty title="No users" />}
        {users.data && users.data.length > 0 && (
          <div class="table-wrap">
            <table class="responsive-table">
              <thead>
                <tr>
                  <th scope="col">User</th>
                  <th scope="col">Role</th>
                  <th scope="col">Created</th>
                  <th scope="col">Enabled</th>
                  <th scope="col">Password</th>
                  <th scope="col">
                    <span class="sr-only">Actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {users.data.map((u) => {
                  const enabled = u.disabled !== undefined ? !u.disabled : u.enabled !== false;
                  const self = u.id === me.id;
                  const patch = async (body: Record<string, unknown>) => {
                    const res = await api<User | undefined>('PATCH', `/api/users/${encodeURIComponent(u.id)}`, body);
                    replace(res ?? { ...u, disabled: body.disabled as boolean | undefined, enabled: body.disabled === undefined ? u.enabled : !body.disabled });
                  };
                  return (
                    <tr key={u.id}>
                      <td data-label="User">
                        {u.username} {self && <span class="tag">you</span>}
                      </td>
                      <td data-label="Role">{u.role}</td>
                      <td data-label="Created" title={formatDateTime(toMs(u.created_at))}>
                        {formatRelative(toMs(u.created_at))}
                      </td>
                      <td data-label="Enabled">
                        <Switch
                          checked={enabled}
                          disabled={self}
                          label={self ? 'You cannot disable yourself' : enabled ? `Disable ${u.username}` : `Enable ${u.username}`}
                          onChange={(v) => patch({ disabled: !v }).catch((e) => toast((e as Error).message, 'error'))}
                        />
                      </td>
                      <td data-label="Password">
                        <InlineEdit
                          value=""
                          label={`new password for ${u.username}`}
                          placeholder="Set new…"
                          onSave={async (v) => {
                            if (v.length < 8) throw new Error('At least 8 characters');
                            await patch({ password: v });
                            toast(`Password of ${u.username} changed`);
                          }}
                        />
                      </td>
                      <td class="actions-cell">
                        {!self && (
                          <ConfirmButton
                            label="Delete"
                            confirmLabel={`Delete ${u.username}`}
                            onConfirm={async () => {
                              try {
                                await api('DELETE', `/api/users/${encodeURIComponent(u.id)}`);
                                users.setData((l) => (l ?? []).filter((x) => x.id !== u.id));
                                toast(`Deleted ${u.username}`);
                              } catch (e) {
                                toast((e as Error).message, 'error');
                              }
                            }}
                          />
                        )}
                      </td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </div>
        )}
      </Section>
    </div>
  );
}
