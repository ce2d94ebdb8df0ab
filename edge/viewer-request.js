// CloudFront Function (cloudfront-js-2.0), viewer request: rewrites an image request to its canonical path,
// /<version>/<key>/<spec>, which is also its variant's key in the cache bucket, so CloudFront's cache, the bucket
// and the resize function agree on one string. Mirrors functions/resize/imageorigin/spec.py; edge/vectors.json is
// the contract both are tested against. The template embeds this file (make edge); CloudFormation's Fn::Sub
// fills the three settings below from the stack's parameters.
var VERSION = '${KeyVersion}';
var MAX_SIDE = ${MaxOutputSide};
var PRESETS = ${Presets};

var ALIASES = {w: 'w', width: 'w', scalex: 'w', h: 'h', height: 'h', scaley: 'h', resize: 'resize', fit: 'fit',
  fm: 'fm', format: 'fm', encoding: 'fm', q: 'q', quality: 'q', enlarge: 'enlarge', bg: 'bg', dpr: 'dpr',
  copyright: 'copyright', preset: 'preset'};
var FITS = {inside: 1, cover: 1, contain: 1, fill: 1, outside: 1};
var FORMATS = {jpeg: 'jpeg', jpg: 'jpeg', png: 'png', webp: 'webp', avif: 'avif', gif: 'gif'};
var EXTENSIONS = {jpg: 'jpeg', jpeg: 'jpeg', jpe: 'jpeg', png: 'png', webp: 'webp', avif: 'avif', gif: 'gif',
  heic: 'jpeg', heif: 'jpeg'};
var LEGACY = {jpeg: 'jpeg', png: 'png', gif: 'gif'};
var QUALITY = {jpeg: 80, webp: 80, avif: 60};
var BOOL = {'0': 0, 'false': 0, '1': 1, 'true': 1};
var FM_NAMES = {fm: 1, format: 1, encoding: 1};
// thumbor URLs (/unsafe/... or /<HMAC-SHA1>/...) go to the function as sent: their signature covers the path
var THUMBOR = /^\/(unsafe|[A-Za-z0-9_-]{27}=)\/./;

function own(map, name) {
  return Object.prototype.hasOwnProperty.call(map, name) ? map[name] : undefined;
}

function Refusal(body) {
  this.body = body;
}

function bad(name, message) {
  return new Refusal({code: 'bad_parameter', message: name + ': ' + message, parameter: name});
}

function badKey(message) {
  return new Refusal({code: 'bad_key', message: message});
}

// Percent-encoding the one way Python's quote() does: RFC 3986 unreserved characters kept, '/' kept in keys.
function encode(text, keepSlash) {
  var out = encodeURIComponent(text).replace(/[!'()*]/g, function (c) {
    return '%' + c.charCodeAt(0).toString(16).toUpperCase();
  });
  return keepSlash ? out.replace(/%2F/g, '/') : out;
}

function decode(text) {
  try {
    return decodeURIComponent(text.replace(/\+/g, ' '));
  } catch (e) {
    return text;
  }
}

function parseKey(path) {
  var encoded = path.charAt(0) === '/' ? path.slice(1) : path;
  if (/%(?![0-9A-Fa-f]{2})/.test(encoded)) throw badKey("a '%' starts no %XX escape");
  var key;
  try {
    key = decodeURIComponent(encoded);
  } catch (e) {
    throw badKey('the key is not UTF-8');
  }
  if (!key) throw badKey('no image key');
  if (encodeURIComponent(key).replace(/%../g, 'x').length > 1024) throw badKey('key over 1024 bytes');
  if (/[\\\u0000-\u001f\u007f-\u009f]/.test(key)) throw badKey('backslash or control character');
  var segments = key.split('/');
  for (var i = 0; i < segments.length; i++) {
    if (segments[i] === '' || segments[i] === '.' || segments[i] === '..') {
      throw badKey("empty, '.' or '..' segment");
    }
  }
  return key;
}

function acceptedTypes(accept) {
  var types = {};
  accept.split(',').forEach(function (item) {
    var parts = item.split(';').map(function (p) { return p.trim(); });
    var q = 1;
    for (var i = 1; i < parts.length; i++) {
      var at = parts[i].indexOf('=');
      var name = at < 0 ? parts[i] : parts[i].slice(0, at);
      if (name.trim().toLowerCase() === 'q') {
        var value = at < 0 ? '' : parts[i].slice(at + 1).trim();
        q = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(value) ? Number(value) : 0;
      }
    }
    if (parts[0] && q > 0) types[parts[0].toLowerCase()] = 1;
  });
  return types;
}

// fm=auto: AVIF (never for GIF or WebP originals, which may be animated), then WebP, else the original's format
// if every browser shows it, else PNG (never JPEG: the original may be transparent).
function negotiate(accept, hint) {
  var offered = acceptedTypes(accept);
  if (offered['image/avif'] && hint !== 'gif' && hint !== 'webp') return 'avif';
  if (offered['image/webp']) return 'webp';
  return own(LEGACY, hint) || 'png';
}

function formatHint(key) {
  var dot = key.lastIndexOf('.');
  var ext = key.slice(dot + 1);
  return dot < 0 || ext.indexOf('/') >= 0 ? undefined : own(EXTENSIONS, ext.toLowerCase());
}

function canonicalValues(query) {
  var values = {};
  for (var name in query) {
    var canonical = own(ALIASES, name.toLowerCase());
    if (!canonical) throw bad(name, 'unknown parameter');
    if (query[name].length !== 1 || own(values, canonical) !== undefined) {
      throw bad(name, 'given more than once');
    }
    var value = query[name][0].trim();
    if (!value) throw bad(name, 'must not be empty');
    values[canonical] = value;
  }
  return values;
}

function parseQuery(text) {
  var query = {};
  text.split('&').forEach(function (pair) {
    var at = pair.indexOf('=');
    if (at < 0 || at === pair.length - 1) return;
    var name = decode(pair.slice(0, at));
    (own(query, name) || (query[name] = [])).push(decode(pair.slice(at + 1)));
  });
  return query;
}

function expandPreset(values) {
  var name = values.preset;
  delete values.preset;
  if (own(PRESETS, name) === undefined) throw bad('preset', 'unknown preset ' + name);
  var expanded = canonicalValues(parseQuery(PRESETS[name]));
  var clash = Object.keys(expanded).filter(function (n) { return own(values, n) !== undefined; }).sort();
  if (clash.length) throw bad(clash[0], 'is set by preset ' + name + ' already');
  for (var n in values) expanded[n] = values[n];
  return expanded;
}

function bounded(name, raw, high) {
  if (!/^[0-9]{1,6}$/.test(raw)) throw bad(name, 'a whole number, 1 to ' + high);
  var value = Number(raw);
  if (value < 1 || value > high) throw bad(name, 'from 1 to ' + high);
  return value;
}

function flag(values, name) {
  var raw = (own(values, name) || '0').toLowerCase();
  if (own(BOOL, raw) === undefined) throw bad(name, 'must be 0 or 1');
  return BOOL[raw];
}

// The spec segment of the canonical path, or a Refusal; the order of checks is spec.py's.
function specSegment(key, values, accept) {
  var has = function (name) { return own(values, name) !== undefined; };
  var width = has('w') ? bounded('w', values.w, MAX_SIDE) : null;
  var height = has('h') ? bounded('h', values.h, MAX_SIDE) : null;
  if (has('resize')) {
    if (width !== null || height !== null) throw bad('resize', 'not with w or h');
    var box = /^([0-9]{1,6})[*xX]([0-9]{1,6})$/.exec(values.resize);
    if (!box) throw bad('resize', 'must be WxH, e.g. 300x200');
    width = bounded('resize', box[1], MAX_SIDE);
    height = bounded('resize', box[2], MAX_SIDE);
  }
  var fit = has('fit') ? values.fit.toLowerCase() : 'inside';
  if (!own(FITS, fit)) throw bad('fit', 'inside, cover, contain, fill or outside');
  var hint = formatHint(key);
  var format;
  if (!has('fm')) format = hint || 'original';
  else if (values.fm.toLowerCase() === 'auto') format = negotiate(accept, hint);
  else format = own(FORMATS, values.fm.toLowerCase());
  if (!format) throw bad('fm', 'avif, gif, jpeg, png, webp or auto');
  var quality = format === 'original' ? null : own(QUALITY, format) || null;
  if (has('q')) {
    quality = bounded('q', values.q, 100);
    if (format === 'png' || format === 'gif') quality = null;
  }
  var enlarge = flag(values, 'enlarge');
  var copyright = flag(values, 'copyright');
  var bg = (has('bg') ? values.bg : 'ffffff').replace(/^#/, '');
  if (!/^([0-9a-fA-F]{6}|[0-9a-fA-F]{3})$/.test(bg)) throw bad('bg', 'a hex colour, e.g. ff0000');
  if (bg.length === 3) bg = bg.replace(/(.)/g, '$1$1');
  bg = bg.toLowerCase();
  if (has('dpr')) {
    var dpr = Number(values.dpr);
    if (!/^[0-9](\.[0-9]{1,3})?$/.test(values.dpr) || dpr < 1 || dpr > 4) {
      throw bad('dpr', 'from 1 to 4, e.g. 1.5');
    }
    var sides = [width, height].filter(function (s) { return s !== null; }).map(function (s) { return s * dpr; });
    if (sides.length) {
      var shrink = Math.min(1, MAX_SIDE / Math.max.apply(null, sides));
      var scale = function (s) { return s === null ? null : Math.max(1, Math.floor(s * dpr * shrink + 0.5)); };
      width = scale(width);
      height = scale(height);
    }
  }
  if (width === null || height === null) fit = 'inside';
  var parts = [];
  if (width !== null) parts.push('w=' + width);
  if (height !== null) parts.push('h=' + height);
  if (width !== null || height !== null) parts.push('fit=' + fit, 'enlarge=' + enlarge);
  var pads = fit === 'contain' && width !== null && height !== null;
  if (pads || format === 'jpeg' || format === 'original') parts.push('bg=' + bg);
  parts.push('fm=' + format);
  if (quality !== null) parts.push('q=' + quality);
  if (copyright) parts.push('copyright=1');
  return parts.join(',');
}

// A path already canonical: its key and its spec segment read back as a query.
function splitCanonical(uri) {
  var prefix = '/' + VERSION + '/';
  if (uri.indexOf(prefix) !== 0) return null;
  var rest = uri.slice(prefix.length);
  var cut = rest.lastIndexOf('/');
  var last = rest.slice(cut + 1);
  if (cut <= 0 || !/^[a-z]+=[^,=\/]*(,[a-z]+=[^,=\/]*)*$/.test(last) || last.indexOf('fm=') < 0) return null;
  var query = {};
  last.split(',').forEach(function (pair) {
    var at = pair.indexOf('=');
    var name = pair.slice(0, at);
    (own(query, name) || (query[name] = [])).push(pair.slice(at + 1));
  });
  return {path: '/' + rest.slice(0, cut), query: query};
}

function pictureQuery(query, accept) {
  var values = {};
  for (var name in query) {
    if (name !== 'picture' && name !== 'alt' && name !== 'sizes') {
      throw bad(name, 'not with picture');
    }
    if (query[name].length !== 1) throw bad(name, 'given more than once');
    values[name] = query[name][0];
  }
  var mode = values.picture.trim().toLowerCase();
  if (mode !== '' && mode !== 'json' && mode !== 'html') {
    throw bad('picture', 'json, html or empty');
  }
  var json = mode === 'json' || (mode === '' && acceptedTypes(accept)['application/json'] === 1);
  var out = {picture: {value: json ? 'json' : 'html'}};
  if (values.alt) out.alt = {value: encode(values.alt, false)};
  if (values.sizes) out.sizes = {value: encode(values.sizes, false)};
  return out;
}

// A signed request keeps its query for the function to verify (sorted, re-encoded; `s` does not cover the format,
// so fm=auto is resolved here like any other).
function signedQuery(key, query, accept) {
  var out = {};
  Object.keys(query).sort().forEach(function (name) {
    var values = query[name].map(function (v) {
      var auto = own(FM_NAMES, name.toLowerCase()) && v.trim().toLowerCase() === 'auto';
      return {value: encode(auto ? negotiate(accept, formatHint(key)) : v, false)};
    });
    out[encode(name, false)] = values.length > 1 ? {value: values[0].value, multiValue: values} : values[0];
  });
  return out;
}

function handler(event) {
  var request = event.request;
  var accept = request.headers.accept ? request.headers.accept.value : '';
  var query = {};
  for (var raw in request.querystring) {
    var entry = request.querystring[raw];
    var given = entry.multiValue ? entry.multiValue.map(function (v) { return v.value; }) : [entry.value];
    query[decode(raw)] = given.map(decode);
  }
  if (THUMBOR.test(request.uri)) return request;
  try {
    if (own(query, 's') !== undefined) {
      var signedKey = parseKey(request.uri);
      request.querystring = signedQuery(signedKey, query, accept);
      request.uri = '/' + encode(signedKey, true);
      return request;
    }
    if (own(query, 'picture') !== undefined) {
      request.querystring = pictureQuery(query, accept);
      request.uri = '/' + encode(parseKey(request.uri), true);
      return request;
    }
    var path = request.uri;
    var canonical = splitCanonical(path);
    if (canonical) {
      var extra = Object.keys(query);
      if (extra.length) throw bad(extra[0], 'not with a canonical path');
      path = canonical.path;
      query = canonical.query;
    }
    var key = parseKey(path);
    var values = canonicalValues(query);
    if (own(values, 'preset') !== undefined) values = expandPreset(values);
    request.querystring = {};
    request.uri = Object.keys(values).length
      ? '/' + VERSION + '/' + encode(key, true) + '/' + specSegment(key, values, accept)
      : '/' + encode(key, true);
    return request;
  } catch (e) {
    if (!(e instanceof Refusal)) throw e;
    return {
      statusCode: 400,
      statusDescription: 'Bad Request',
      headers: {
        'content-type': {value: 'application/json'},
        'cache-control': {value: 'public, max-age=10'},
        'x-content-type-options': {value: 'nosniff'}
      },
      body: {encoding: 'text', data: JSON.stringify(e.body)}
    };
  }
}
