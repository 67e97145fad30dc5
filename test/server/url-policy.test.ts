import { describe, expect, it } from 'vitest';
import { blockedAddressReason, checkUrlSyntax, parseIpv6, resolveAllowedAddress, type Resolver } from '../../src/server/url-policy.js';
import { fetchImageUrl } from '../../src/server/image-source.js';
import { startImageServer } from './support.js';

const BLOCKED = [
  '0.0.0.0', '0.1.2.3', '10.0.0.1', '10.255.255.255', '100.64.0.1', '100.127.255.254', '127.0.0.1', '127.9.9.9',
  '169.254.169.254', '169.254.0.1', '172.16.0.1', '172.31.255.255', '192.0.0.8', '192.0.2.1', '192.168.1.1',
  '198.18.0.1', '198.19.255.255', '198.51.100.7', '203.0.113.9', '224.0.0.1', '239.255.255.250', '240.0.0.1',
  '255.255.255.255',
  '::', '::1', '[::1]', '::ffff:127.0.0.1', '::ffff:7f00:1', '::ffff:10.0.0.1', '::ffff:169.254.169.254',
  '::ffff:0:192.168.0.1', '::127.0.0.1', '64:ff9b::10.0.0.1', '64:ff9b:1::1', '100::1', '2001::1', '2001:db8::1',
  '2002:c0a8:101::1', '2002:7f00:1::', 'fc00::1', 'fd12:3456::1', 'fe80::1', 'fe80::1%eth0', 'febf::1', 'fec0::1',
  'ff02::1', 'ff05::1:3', '3fff::1', '4000::1', '::2',
];

const PUBLIC = [
  '1.1.1.1', '8.8.8.8', '93.184.216.34', '100.63.255.255', '100.128.0.0', '172.15.255.255', '172.32.0.0',
  '169.253.255.255', '192.169.0.1', '223.255.255.255', '2606:4700:4700::1111', '2a00:1450:4001:80b::200e',
  '::ffff:8.8.8.8', '64:ff9b::8.8.8.8', '2002:0808:0808::1',
];

describe('address classification', () => {
  it.each(BLOCKED)('blocks %s', (a) => {
    expect(blockedAddressReason(a)).toEqual(expect.any(String));
  });
  it.each(PUBLIC)('allows %s', (a) => {
    expect(blockedAddressReason(a)).toBeNull();
  });
  it('names the reason', () => {
    expect(blockedAddressReason('169.254.169.254')).toMatch(/link-local/);
    expect(blockedAddressReason('::ffff:127.0.0.1')).toMatch(/IPv4-mapped.*loopback/);
    expect(blockedAddressReason('100.100.1.1')).toMatch(/carrier-grade/);
    expect(blockedAddressReason('fd00::1')).toMatch(/unique local/);
  });
  it('throws for text that is not an address', () => {
    expect(() => blockedAddressReason('example.com')).toThrow(/not an IP address/);
  });
  it('parses every IPv6 text form', () => {
    expect(Array.from(parseIpv6('::ffff:1.2.3.4')!)).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255, 1, 2, 3, 4]);
    expect(Array.from(parseIpv6('1:2:3:4:5:6:7:8')!)).toEqual([0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7, 0, 8]);
    expect(Array.from(parseIpv6('fe80::')!).slice(0, 2)).toEqual([0xfe, 0x80]);
    expect(parseIpv6('1::2::3')).toBeNull();
    expect(parseIpv6('12345::')).toBeNull();
  });
});

describe('URL checks', () => {
  const resolverOf = (answers: Record<string, string[]>): { resolver: Resolver; asked: string[] } => {
    const asked: string[] = [];
    return {
      asked,
      resolver: async (host) => {
        asked.push(host);
        const list = answers[host];
        if (!list) throw Object.assign(new Error('not found'), { code: 'ENOTFOUND' });
        return list.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
      },
    };
  };

  it('accepts only http and https without credentials', () => {
    expect(checkUrlSyntax('https://example.com/a.png').hostname).toBe('example.com');
    for (const bad of ['file:///etc/passwd', 'ftp://example.com/x', 'gopher://x', 'javascript:alert(1)', 'http://user:pw@example.com/', 'not a url']) {
      expect(() => checkUrlSyntax(bad)).toThrow();
    }
  });

  it('normalises numeric IPv4 host forms before checking them', async () => {
    const { resolver, asked } = resolverOf({});
    for (const url of ['http://2130706433/', 'http://0x7f.1/', 'http://0177.0.0.1/', 'http://127.1/', 'http://[::ffff:7f00:1]/']) {
      await expect(resolveAllowedAddress(checkUrlSyntax(url), { allowPrivate: false, resolver })).rejects.toThrow(/loopback/);
    }
    expect(asked).toEqual([]);
  });

  it('resolves names and refuses a host with any forbidden address', async () => {
    const { resolver } = resolverOf({
      'public.example': ['93.184.216.34', '2606:4700::1'],
      'metadata.example': ['169.254.169.254'],
      'mixed.example': ['93.184.216.34', '10.0.0.5'],
      'mapped.example': ['::ffff:192.168.0.10'],
    });
    const policy = { allowPrivate: false, resolver };
    expect(await resolveAllowedAddress(new URL('https://public.example/x.png'), policy)).toEqual({ address: '93.184.216.34', family: 4 });
    await expect(resolveAllowedAddress(new URL('http://metadata.example/'), policy)).rejects.toThrow(/169\.254\.169\.254.*link-local/);
    await expect(resolveAllowedAddress(new URL('http://mixed.example/'), policy)).rejects.toThrow(/10\.0\.0\.5.*private/);
    await expect(resolveAllowedAddress(new URL('http://mapped.example/'), policy)).rejects.toThrow(/IPv4-mapped/);
    await expect(resolveAllowedAddress(new URL('http://unknown.example/'), policy)).rejects.toThrow(/ENOTFOUND/);
    expect(await resolveAllowedAddress(new URL('http://metadata.example/'), { allowPrivate: true, resolver })).toEqual({
      address: '169.254.169.254',
      family: 4,
    });
  });

  it('connects to the checked address, not to a second DNS answer', async () => {
    const images = await startImageServer();
    try {
      const port = new URL(images.url).port;
      let calls = 0;
      // A rebinding resolver: the first answer is checked, a later one would point elsewhere.
      const resolver: Resolver = async () => (calls++ === 0 ? [{ address: '127.0.0.1', family: 4 }] : [{ address: '10.9.9.9', family: 4 }]);
      const bytes = await fetchImageUrl(`http://images.test:${port}/chelsea.png`, { allowPrivate: true, resolver }, { maxBytes: 1e6, timeoutMs: 5000, maxRedirects: 0 });
      expect(bytes.length).toBeGreaterThan(1000);
      expect(calls).toBe(1);
    } finally {
      await images.close();
    }
  });

  it('re-checks every redirect hop and enforces size and redirect limits', async () => {
    const images = await startImageServer();
    try {
      const allowOnlyFirstHop: Resolver = async (host) => {
        if (host === 'start.test') return [{ address: '127.0.0.1', family: 4 }];
        return [{ address: '10.0.0.1', family: 4 }];
      };
      const port = new URL(images.url).port;
      // With private addresses refused, even the loopback first hop fails; with them allowed, the hop to a
      // literal private address is still checked (and refused under a strict policy).
      const to = encodeURIComponent('http://169.254.169.254/latest');
      await expect(
        fetchImageUrl(`${images.url}/redirect-to/${to}`, { allowPrivate: false, resolver: allowOnlyFirstHop }, { maxBytes: 1e6, timeoutMs: 5000, maxRedirects: 3 }),
      ).rejects.toMatchObject({ status: 400, code: 'image_url_not_allowed' });
      await expect(
        fetchImageUrl(`http://start.test:${port}/redirect`, { allowPrivate: true, resolver: allowOnlyFirstHop }, { maxBytes: 1e6, timeoutMs: 5000, maxRedirects: 0 }),
      ).rejects.toMatchObject({ status: 400, code: 'image_fetch_failed' });
      await expect(
        fetchImageUrl(`${images.url}/redirect-to/${encodeURIComponent('file:///etc/passwd')}`, { allowPrivate: true, resolver: allowOnlyFirstHop }, { maxBytes: 1e6, timeoutMs: 5000, maxRedirects: 3 }),
      ).rejects.toMatchObject({ code: 'image_url_not_allowed' });
      await expect(
        fetchImageUrl(`${images.url}/chelsea.png`, { allowPrivate: true, resolver: allowOnlyFirstHop }, { maxBytes: 1000, timeoutMs: 5000, maxRedirects: 0 }),
      ).rejects.toMatchObject({ status: 400, code: 'image_too_large' });
      const ok = await fetchImageUrl(`${images.url}/redirect`, { allowPrivate: true, resolver: allowOnlyFirstHop }, { maxBytes: 1e6, timeoutMs: 5000, maxRedirects: 1 });
      expect(ok.length).toBeGreaterThan(1000);
    } finally {
      await images.close();
    }
  });
});
