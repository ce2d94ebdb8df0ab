// Runs every request of a vector table through the CloudFront Function the way CloudFront calls it, under
// Node.js, and prints what the function did with each as JSON: {uri} when it rewrote the request, {status, body}
// when it answered itself, and the tables it carries. Usage: node edge/run-vectors.js edge/viewer-request.js
// edge/vectors.json
'use strict';
const fs = require('fs');
const vm = require('vm');

const [codePath, tablePath] = process.argv.slice(2);
const table = JSON.parse(fs.readFileSync(tablePath, 'utf8'));

// What CloudFormation's Fn::Sub does to the code: ${Name} becomes the parameter's value (objects as JSON).
const source = fs.readFileSync(codePath, 'utf8').replace(/\$\{([A-Za-z0-9]+)\}/g, (_, name) => {
  if (!(name in table.parameters)) throw new Error(`no parameter ${name} for \${${name}}`);
  const value = table.parameters[name];
  return typeof value === 'object' ? JSON.stringify(value) : String(value);
});
const sandbox = vm.createContext({});
vm.runInContext(source, sandbox, {filename: codePath});

// The querystring object CloudFront builds: one entry per name as sent, repeats under multiValue.
function querystring(raw) {
  const qs = {};
  const has = (name) => Object.prototype.hasOwnProperty.call(qs, name);
  for (const pair of raw ? raw.split('&') : []) {
    const at = pair.indexOf('=');
    const name = at < 0 ? pair : pair.slice(0, at);
    const value = at < 0 ? '' : pair.slice(at + 1);
    if (!has(name)) qs[name] = {value};
    else {
      if (!qs[name].multiValue) qs[name].multiValue = [{value: qs[name].value}];
      qs[name].multiValue.push({value});
    }
  }
  return qs;
}

const results = table.vectors.map((vector) => {
  const headers = vector.accept ? {accept: {value: vector.accept}} : {};
  const event = {
    version: '1.0',
    context: {eventType: 'viewer-request'},
    viewer: {ip: '192.0.2.1'},
    request: {method: 'GET', uri: vector.path, querystring: querystring(vector.query), headers, cookies: {}},
  };
  const out = sandbox.handler(event);
  if (out.statusCode !== undefined) {
    return {status: out.statusCode, headers: out.headers, body: JSON.parse(out.body.data)};
  }
  const query = Object.keys(out.querystring).flatMap((name) => {
    const entry = out.querystring[name];
    return (entry.multiValue || [entry]).map((v) => `${name}=${v.value}`);
  }).join('&');
  return {uri: out.uri + (query ? `?${query}` : '')};
});
// The function's upper-case top-level values as it evaluated them (the generated format tables among them).
const tables = Object.fromEntries(Object.keys(sandbox)
  .filter((name) => /^[A-Z][A-Z0-9_]*$/.test(name) && typeof sandbox[name] !== 'function')
  .map((name) => [name, sandbox[name]]));
process.stdout.write(JSON.stringify({bytes: Buffer.byteLength(source), tables, results}));
