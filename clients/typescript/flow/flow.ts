// The generated TypeScript client drives a whole flow against a live service (BASE_URL):
// register, log in, create with an Idempotency-Key and retry, page by cursor, update with
// If-Match, and 412 for a stale version. Exits non-zero on the first broken expectation.
import { createClient } from '../src/client/client/index.js';
import {
  createItem,
  listItems,
  login,
  patchItem,
  readItem,
  readMe,
  register,
} from '../src/client/index.js';

function expect(condition: unknown, message: string): asserts condition {
  if (!condition) {
    throw new Error(message);
  }
}

function nextCursor(link: string | null): string | undefined {
  const next = /<([^>]*)>;\s*rel="next"/.exec(link ?? '');
  if (!next?.[1]) {
    return undefined;
  }
  const cursor = new URL(next[1], 'http://link.invalid').searchParams.get('cursor');
  expect(cursor, `a next link without a cursor: ${link}`);
  return cursor;
}

async function main(): Promise<void> {
  const baseUrl = process.env['BASE_URL'];
  expect(baseUrl, 'BASE_URL is not set');
  const anonymous = createClient({ baseUrl });
  const email = `ts-${Math.random().toString(16).slice(2, 10)}@example.com`;
  const password = 'a long passphrase 1';

  const registered = await register({ client: anonymous, body: { email, password } });
  expect(registered.response.status === 201, `register: ${registered.response.status}`);

  const token = await login({ client: anonymous, body: { username: email, password } });
  expect(token.data, `login: ${token.response.status}`);
  const client = createClient({ baseUrl, auth: token.data.access_token });
  const me = await readMe({ client });
  expect(me.data?.email === email, 'GET /users/me is not the new account');

  const key = crypto.randomUUID();
  const body = { name: 'lamp', price: '12.50', tags: ['ts-flow'] };
  const first = await createItem({ client, body, headers: { 'Idempotency-Key': key } });
  const retry = await createItem({ client, body, headers: { 'Idempotency-Key': key } });
  expect(first.data && retry.data, `create: ${first.response.status}, ${retry.response.status}`);
  expect(first.response.status === 201 && retry.response.status === 201, 'create is not 201');
  expect(retry.data.id === first.data.id, 'the retry created a second item');
  expect(retry.response.headers.get('Idempotent-Replayed') === 'true', 'retry not replayed');

  const created = [first.data.id];
  for (let n = 0; n < 4; n++) {
    const more = await createItem({ client, body: { name: `item ${n}`, price: '1' } });
    expect(more.data, `create ${n}: ${more.response.status}`);
    created.push(more.data.id);
  }
  const seen: number[] = [];
  let cursor: string | undefined;
  for (let page = 0; page < 10; page++) {
    const query = { owner_id: me.data.id, limit: 2, ...(cursor ? { cursor } : {}) };
    const listed = await listItems({ client: anonymous, query });
    expect(listed.data, `list: ${listed.response.status}`);
    seen.push(...listed.data.map((item) => item.id));
    cursor = nextCursor(listed.response.headers.get('Link'));
    if (!cursor) {
      break;
    }
  }
  expect(
    JSON.stringify(seen) === JSON.stringify([...created].sort((a, b) => a - b)),
    `cursor pages gave ${JSON.stringify(seen)}, created ${JSON.stringify(created)}`,
  );

  const etag = first.response.headers.get('ETag');
  expect(etag, 'create answered without an ETag');
  const path = { item_id: first.data.id };
  const changed = await patchItem({
    client,
    path,
    body: { name: 'brighter lamp' },
    headers: { 'If-Match': etag },
  });
  expect(changed.response.status === 200, `update: ${changed.response.status}`);
  expect(changed.response.headers.get('ETag') !== etag, 'the update kept the ETag');
  const stale = await patchItem({
    client,
    path,
    body: { name: 'lost update' },
    headers: { 'If-Match': etag },
  });
  expect(stale.response.status === 412, `stale update: ${stale.response.status}`);
  const current = await readItem({ client: anonymous, path });
  expect(current.data?.name === 'brighter lamp', 'the stale update was applied');
  console.log('typescript client flow: ok');
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
