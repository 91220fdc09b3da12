import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { checkConfig, loadConfig, settingsByFile, shownValue } from '../../../src/config/index.js';
import { writeConfig } from '../../helpers/tern-process.js';

describe('redis.ini', () => {
  it('is off by default, and reads url, cluster seeds, sentinels and the failure settings', () => {
    assert.equal(loadConfig(writeConfig({})).redis.enabled, false);
    const url = loadConfig(writeConfig({ 'redis.ini': '[main]\nenabled=true\nurl=redis://127.0.0.1:6380/2\nfailure_mode=closed\nlease_ttl=45s\n' })).redis;
    assert.equal(url.url, 'redis://127.0.0.1:6380/2');
    assert.equal(url.failure_mode, 'closed');
    assert.equal(url.lease_ttl, 45);
    assert.equal(url.key_prefix, 'tern:');
    assert.equal(url.command_timeout, 500);
    const cluster = loadConfig(writeConfig({ 'redis.ini': '[main]\nenabled=true\ncluster=10.0.0.1:7000, 10.0.0.2:7000,[::1]:7001\n' })).redis;
    assert.deepEqual(cluster.cluster, [{ host: '10.0.0.1', port: 7000 }, { host: '10.0.0.2', port: 7000 }, { host: '::1', port: 7001 }]);
    const sentinels = loadConfig(writeConfig({ 'redis.ini': '[main]\nenabled=true\nsentinels=10.0.0.1:26379\nname=mymaster\n' })).redis;
    assert.equal(sentinels.name, 'mymaster');
  });

  it('refuses what cannot work, naming the key: no way or two ways to Redis, sentinels without name, a timeout as long as a renewal, unknown keys', () => {
    const problems = (text: string) => checkConfig(writeConfig({ 'redis.ini': text })).map((e) => [e.file, e.key]);
    assert.deepEqual(problems('[main]\nenabled=true\n'), [['redis.ini', 'url']]);
    assert.deepEqual(problems('[main]\nenabled=true\nurl=redis://a:1\ncluster=b:2\n'), [['redis.ini', 'url']]);
    assert.deepEqual(problems('[main]\nenabled=true\nsentinels=a:26379\n'), [['redis.ini', 'name']]);
    assert.deepEqual(problems('[main]\nenabled=true\nurl=redis://a:1\nlease_ttl=3\ncommand_timeout=1000\n'), [['redis.ini', 'command_timeout']]);
    assert.deepEqual(problems('[main]\nenabled=true\nurl=http://a:1\n'), [['redis.ini', 'url']]);
    assert.deepEqual(problems('[main]\nfailure_mode=maybe\n'), [['redis.ini', 'failure_mode']]);
    assert.equal(problems('[main]\nenabeld=true\n').length, 1);
    // Off, nothing else is required.
    assert.deepEqual(problems('[main]\nenabled=false\n'), []);
  });

  it('never shows the password of a url', () => {
    const config = loadConfig(writeConfig({ 'redis.ini': '[main]\nenabled=true\nurl=redis://tern:s3cret@127.0.0.1:6379\npassword=other\n' }));
    // As `tern config show` and the reload records print each key.
    const shown = JSON.stringify(Object.entries(settingsByFile(config)['redis.ini']).map(([k, v]) => [k, shownValue(k, v)]));
    assert.ok(!shown.includes('s3cret') && !shown.includes('other'), shown);
    assert.ok(shown.includes('redis://tern:(secret)@127.0.0.1:6379'), shown);
  });
});
