// node llhttp_dump.js MODE DIR...: Node's llhttp (strict: no lenient flags) reading the same corpus files as
// egressd_parse_dump, one JSON line each in the same shape. Works on Node 18 and 20: HTTPParser from
// _http_common, initialize(type, resource, maxHeaderSize, lenient = 0). Input is fed one byte at a time, so
// where the head and the message end is known to the byte.
'use strict';
const fs = require('fs');
const path = require('path');
const { HTTPParser, methods } = require('_http_common');

const RESPONSE_METHODS = ['GET', 'HEAD', 'CONNECT'];
const CHUNKED_PREFIX = Buffer.from('POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n', 'latin1');

function files(root) {
  if (!fs.existsSync(root)) return [];
  const out = [];
  for (const entry of fs.readdirSync(root, { withFileTypes: true })) {
    const full = path.join(root, entry.name);
    if (entry.isDirectory()) out.push(...files(full));
    else if (entry.isFile()) out.push(full);
  }
  return out.sort();
}

// requestMethod: for responses, the method of the request they answer (HEAD and CONNECT 2xx have no body).
function parse(data, type, requestMethod) {
  const parser = new HTTPParser();
  parser.initialize(type, {}, 0, 0);
  const result = { head: 'incomplete' };
  let pendingHeaders = [];
  let pendingUrl = '';
  let fed = 0;
  let body = [];
  let messageEnd = null;
  // Upgrade and CONNECT: llhttp stops reading at the end of the head, the rest is another protocol.
  let upgraded = false;
  parser[HTTPParser.kOnHeaders] = (headers, url) => {
    pendingHeaders.push(...headers);
    pendingUrl += url;
  };
  parser[HTTPParser.kOnHeadersComplete] = (major, minor, headers, method, url, statusCode, statusMessage, upgrade) => {
    upgraded = upgrade === true;
    const all = headers || pendingHeaders;
    result.head = 'complete';
    result.version = `${major}.${minor}`;
    result.headers = [];
    for (let i = 0; i + 1 < all.length; i += 2) result.headers.push([all[i], all[i + 1]]);
    result.head_size = fed;
    if (type === HTTPParser.REQUEST) {
      result.method = methods[method];
      result.target = url || pendingUrl;
      return 0;
    }
    result.status = statusCode;
    result.reason = statusMessage;
    if (requestMethod === 'HEAD') return 1;
    if (requestMethod === 'CONNECT' && statusCode >= 200 && statusCode < 300) return 2;
    return 0;
  };
  parser[HTTPParser.kOnBody] = (chunk, start, length) => {
    body.push(start === undefined ? chunk : chunk.slice(start, start + length));
  };
  parser[HTTPParser.kOnMessageComplete] = () => {
    if (messageEnd === null) messageEnd = fed;
  };
  let error = null;
  for (let i = 0; i < data.length && messageEnd === null; i++) {
    fed = i + 1;
    const r = parser.execute(data.subarray(i, i + 1));
    if (r instanceof Error) {
      error = r.code || String(r);
      break;
    }
    if (upgraded) break;
  }
  if (error === null && messageEnd === null && result.head === 'complete' && type === HTTPParser.RESPONSE) {
    fed = data.length;
    // finish() fails when the body is still incomplete at the end of the input: that is no refusal.
    parser.finish();
  }
  if (result.head !== 'complete') {
    if (error !== null) result.head = 'error';
    result.error = error;
    return result;
  }
  const bodyEnd = messageEnd === null ? null : messageEnd - result.head_size;
  result.body = {
    ok: error === null,
    data: Buffer.concat(body).toString('latin1'),
    end: bodyEnd,
    error,
  };
  return result;
}

function dump(mode, bytes) {
  switch (mode) {
    case 'request':
      return parse(bytes, HTTPParser.REQUEST);
    case 'response': {
      if (bytes.length === 0) return { head: 'incomplete' };
      const method = RESPONSE_METHODS[bytes[0] % RESPONSE_METHODS.length];
      return Object.assign({ request_method: method }, parse(bytes.subarray(1), HTTPParser.RESPONSE, method));
    }
    case 'chunked': {
      const r = parse(Buffer.concat([CHUNKED_PREFIX, bytes.subarray(2)]), HTTPParser.REQUEST);
      return { head: r.head, body: r.body, error: r.error };
    }
    default:
      throw new Error(`unknown mode ${mode}`);
  }
}

const [mode, ...roots] = process.argv.slice(2);
for (const root of roots) {
  for (const file of files(root)) {
    let bytes;
    try {
      bytes = fs.readFileSync(file);
    } catch (e) {
      continue; // a corpus file a running fuzzer has just removed
    }
    const line = Object.assign({ file }, dump(mode, bytes));
    process.stdout.write(JSON.stringify(line) + '\n');
  }
}
