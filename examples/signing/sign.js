// Sign a query-API URL from JavaScript (Node.js or any runtime with an HMAC): the same message as
// imageorigin.signing.query_message. Usage: node sign.js SECRET 'photos/cat.jpg' 'w=300&fm=webp&exp=1900000000'
'use strict';
const crypto = require('crypto');

// Percent-encoding the one way: RFC 3986 unreserved characters kept ('/' too, in the key).
const encode = (text) => encodeURIComponent(text).replace(/[!'()*]/g,
  (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase());
const UNSIGNED = ['s', 'fm', 'format', 'encoding']; // the signature and the format

function signedUrl(secret, key, params) {
  const pairs = params.filter(([name]) => !UNSIGNED.includes(name.toLowerCase()))
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
  const path = '/' + key.split('/').map(encode).join('/');
  const message = path + '?' + pairs.map(([n, v]) => encode(n) + '=' + encode(v)).join('&');
  const s = crypto.createHmac('sha256', secret).update(message).digest('hex');
  return path + '?' + params.map(([n, v]) => encode(n) + '=' + encode(v)).concat('s=' + s).join('&');
}

if (require.main === module) {
  const [secret, key, query] = process.argv.slice(2);
  const params = [...new URLSearchParams(query || '')];
  process.stdout.write(signedUrl(secret, key, params) + '\n');
}
module.exports = {signedUrl};
