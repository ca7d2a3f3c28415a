// A minimal browser for Ladder's HTML pages: keeps cookies, follows redirects itself (redirect:
// 'manual') and stops when it is sent to the relying party, the same way tests/e2e/harness.rs does.

export class Browser {
  constructor(origin) {
    this.origin = origin;
    this.cookies = new Map();
  }

  cookieHeader() {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }

  remember(response) {
    for (const line of response.headers.getSetCookie()) {
      const [pair, ...attrs] = line.split(';');
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      const expired = attrs.some((a) => {
        const [k, v = ''] = a.trim().split('=');
        return (k.toLowerCase() === 'max-age' && Number(v) <= 0) ||
          (k.toLowerCase() === 'expires' && Date.parse(v) < Date.now());
      });
      if (expired) this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
  }

  async request(url, { method = 'GET', form } = {}) {
    const headers = { cookie: this.cookieHeader() };
    let body;
    if (form) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      body = new URLSearchParams(form).toString();
    }
    const response = await fetch(url, { method, headers, body, redirect: 'manual' });
    this.remember(response);
    return response;
  }

  /**
   * Follows redirects from `response` while they stay on Ladder. Returns either
   * `{ rp: URL }` (sent to an address outside Ladder, e.g. the redirect URI) or
   * `{ status, html, url }` (a Ladder page).
   */
  async follow(response, url) {
    for (let hops = 0; hops < 20; hops++) {
      if (response.status >= 300 && response.status < 400) {
        const next = new URL(response.headers.get('location'), url);
        if (next.origin !== this.origin) return { rp: next };
        url = next.href;
        response = await this.request(url);
        continue;
      }
      return { status: response.status, html: await response.text(), url };
    }
    throw new Error(`too many redirects, last at ${url}`);
  }

  async open(url) {
    return this.follow(await this.request(url), url);
  }

  async submit(pageUrl, action, form) {
    const url = new URL(action, pageUrl).href;
    const response = await this.request(url, { method: 'POST', form });
    return { response, landing: await this.follow(response, url) };
  }
}

const entities = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

export function decode(text) {
  return text.replace(/&(#x[0-9a-f]+|#[0-9]+|[a-z]+);/gi, (m, e) => {
    if (e[0] === '#') return String.fromCodePoint(e[1] === 'x' || e[1] === 'X' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10));
    return entities[e.toLowerCase()] ?? m;
  });
}

/** The value of `attr` in the tag that contains `marker`. */
function attrOfTag(html, marker, attr) {
  const at = html.indexOf(marker);
  if (at < 0) return undefined;
  const start = html.lastIndexOf('<', at);
  const end = html.indexOf('>', at);
  const tag = html.slice(start, end);
  const m = tag.match(new RegExp(`\\s${attr}="([^"]*)"`));
  return m ? decode(m[1]) : undefined;
}

export const formAction = (html) => attrOfTag(html, '<form', 'action');
export const inputValue = (html, name) => attrOfTag(html, `name="${name}"`, 'value') ?? '';
export const primaryLink = (html) => attrOfTag(html, 'button button-primary', 'href');

export function between(html, start, end) {
  const s = html.indexOf(start);
  if (s < 0) return undefined;
  const e = html.indexOf(end, s + start.length);
  return e < 0 ? undefined : decode(html.slice(s + start.length, e));
}
