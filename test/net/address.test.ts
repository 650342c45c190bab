import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AllowList, classifyAddress, fetchAllowFromEnv, type AddressKind } from '../../src/net/address.js';

const TABLE: [string, AddressKind][] = [
  ['8.8.8.8', 'public'],
  ['1.1.1.1', 'public'],
  ['2606:4700:4700::1111', 'public'],
  ['0.0.0.0', 'unspecified'],
  ['::', 'unspecified'],
  ['127.0.0.1', 'loopback'],
  ['127.255.0.9', 'loopback'],
  ['::1', 'loopback'],
  ['10.0.0.5', 'private'],
  ['172.16.0.1', 'private'],
  ['172.31.255.255', 'private'],
  ['192.168.1.1', 'private'],
  ['fc00::1', 'private'],
  ['fd12:3456::1', 'private'],
  ['169.254.1.1', 'link-local'],
  ['fe80::1', 'link-local'],
  ['100.64.0.1', 'cgnat'],
  ['100.127.255.254', 'cgnat'],
  ['224.0.0.1', 'multicast'],
  ['ff02::1', 'multicast'],
  ['255.255.255.255', 'reserved'],
  ['240.0.0.1', 'reserved'],
  ['192.0.2.10', 'reserved'],
  ['198.18.0.1', 'reserved'],
  ['2001:db8::1', 'reserved'],
  ['::5.6.7.8', 'reserved'],
  ['169.254.169.254', 'metadata'],
  ['169.254.170.2', 'metadata'],
  ['100.100.100.200', 'metadata'],
  ['fd00:ec2::254', 'metadata'],
  // IPv6 forms carrying an IPv4 address are judged by that address.
  ['::ffff:127.0.0.1', 'loopback'],
  ['::ffff:7f00:1', 'loopback'],
  ['::ffff:10.0.0.5', 'private'],
  ['::ffff:169.254.169.254', 'metadata'],
  ['::ffff:8.8.8.8', 'public'],
  ['64:ff9b::10.0.0.5', 'private'],
  ['64:ff9b::a9fe:a9fe', 'metadata'],
  ['64:ff9b::8.8.8.8', 'public'],
  ['2002:7f00:1::', 'loopback'],
  ['2002:0808:0808::1', 'public'],
  ['fe80::1%eth0', 'reserved'],
  ['not-an-ip', 'reserved'],
];

test('addresses are classified, embedded IPv4 forms by the IPv4 inside', () => {
  for (const [ip, kind] of TABLE) assert.equal(classifyAddress(ip), kind, ip);
});

test('172.32.0.1 and 100.128.0.1 lie outside the private and CGNAT ranges', () => {
  assert.equal(classifyAddress('172.32.0.1'), 'public');
  assert.equal(classifyAddress('100.128.0.1'), 'public');
});

test('an empty allowlist permits only public addresses', () => {
  const allow = new AllowList();
  assert.equal(allow.permits('example.com', '93.184.216.34'), true);
  for (const [ip, kind] of TABLE) if (kind !== 'public') assert.equal(allow.permits('example.com', ip), false, ip);
});

test('a CIDR entry permits addresses inside it, including their v4-mapped forms', () => {
  const allow = new AllowList(['10.0.0.0/8', '127.0.0.1', 'fd00::/8']);
  assert.equal(allow.permits('x', '10.200.1.1'), true);
  assert.equal(allow.permits('x', '::ffff:10.200.1.1'), true);
  assert.equal(allow.permits('x', '127.0.0.1'), true);
  assert.equal(allow.permits('x', '127.0.0.2'), false);
  assert.equal(allow.permits('x', 'fd00::5'), true);
  assert.equal(allow.permits('x', '192.168.1.1'), false);
});

test('a hostname entry lets that host reach private addresses but not metadata ones', () => {
  const allow = new AllowList(['minio.internal', '*.corp.example']);
  assert.equal(allow.permits('minio.internal', '10.1.2.3'), true);
  assert.equal(allow.permits('MINIO.internal.', '10.1.2.3'), true);
  assert.equal(allow.permits('s3.corp.example', '192.168.0.9'), true);
  assert.equal(allow.permits('corp.example', '192.168.0.9'), false);
  assert.equal(allow.permits('other.example', '10.1.2.3'), false);
  assert.equal(allow.permits('minio.internal', '169.254.169.254'), false);
  assert.equal(allow.permits('minio.internal', '0.0.0.0'), false);
});

test('metadata addresses are reachable only through a CIDR entry that names them', () => {
  assert.equal(new AllowList(['169.254.169.254/32']).permits('x', '169.254.169.254'), true);
});

test('malformed allowlist entries are refused when the setting is read', () => {
  assert.throws(() => new AllowList(['10.0.0.0/33']), /bad prefix length/);
  assert.throws(() => new AllowList(['10.0.0.0/']), /bad prefix length/);
  assert.throws(() => new AllowList(['http://x/']), /neither an IP\/CIDR nor a hostname/);
});

test('LIKENESS_FETCH_ALLOW is read as a comma or space separated list', () => {
  assert.deepEqual(fetchAllowFromEnv({ LIKENESS_FETCH_ALLOW: '10.0.0.0/8, minio.local  ::1' }), ['10.0.0.0/8', 'minio.local', '::1']);
  assert.deepEqual(fetchAllowFromEnv({}), []);
});
