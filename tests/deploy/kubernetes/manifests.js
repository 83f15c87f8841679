'use strict';
// Renders the kustomizations of deploy/kubernetes and validates the objects they make, offline, for
// tests/deploy/test_kubernetes.py. CI has no kustomize or kubectl binary (only Debian and npm packages can be
// installed), so `render` implements exactly the kustomize features those kustomizations use, and refuses any
// other rather than guess:
//   resources (files and kustomization directories), configMapGenerator (files; behavior create, replace or
//   merge; only with disableNameSuffixHash), patches (strategic-merge patch files, for the fields whose
//   list-merge keys are listed in MERGE_KEYS), images (newName, newTag).
// `validate` checks every object twice against the Kubernetes and prometheus-operator schemas that the
// kubernetes-models packages ship: their compiled JSON-schema validators (types, formats, required fields), and
// their TypeScript declarations through the TypeScript compiler, whose excess-property check is what catches a
// misspelt field (the JSON schemas allow unknown fields, as the API server's non-strict decoding does).
//
//   node manifests.js render DIR           prints the rendered objects as a JSON array
//   node manifests.js validate FILE.json   validates a JSON array of objects; prints every error, exits 1 on any
//   node manifests.js yaml-to-json FILE    prints a YAML 1.2 file (egressd's configuration) as JSON
const fs = require('fs');
const path = require('path');
const YAML = require('yaml');

class UsageError extends Error {}

// kubectl and kustomize read YAML 1.1 (sigs.k8s.io/yaml): 0400 is octal, as in a Secret's defaultMode.
function parse_documents(file) {
    const text = fs.readFileSync(file, 'utf8');
    const docs = YAML.parseAllDocuments(text, { version: '1.1' });
    const objects = [];
    for (const doc of docs) {
        if (doc.errors.length > 0) {
            throw new UsageError(`${file}: ${doc.errors[0].message}`);
        }
        const value = doc.toJS();
        if (value !== null && value !== undefined) {
            objects.push(value);
        }
    }
    return objects;
}

function check_keys(what, object, allowed) {
    for (const key of Object.keys(object)) {
        if (!allowed.includes(key)) {
            const supported = allowed.join(', ');
            throw new UsageError(`${what}: '${key}' is not supported by this renderer (supported: ${supported})`);
        }
    }
}

// A file a kustomization reads (a generator's file, a patch) must be inside its directory, as kustomize's default
// load restrictor demands; only resources may name other kustomization directories.
function file_in(dir, relative, what) {
    const full = path.resolve(dir, relative);
    if (path.relative(dir, full).startsWith('..')) {
        throw new UsageError(`${what}: '${relative}' is outside ${dir}`);
    }
    return full;
}

function id_of(object) {
    const meta = object.metadata || {};
    return `${object.kind}/${meta.namespace || ''}/${meta.name}`;
}

function generate_config_map(dir, generator) {
    check_keys(`${dir}: configMapGenerator`, generator, ['name', 'namespace', 'behavior', 'files', 'options']);
    check_keys(`${dir}: configMapGenerator options`, generator.options || {}, ['disableNameSuffixHash']);
    if (!generator.options || generator.options.disableNameSuffixHash !== true) {
        throw new UsageError(`${dir}: configMapGenerator ${generator.name}: name suffix hashes are not implemented`);
    }
    const data = {};
    for (const entry of generator.files || []) {
        const [key, file] = entry.includes('=') ? entry.split('=', 2) : [path.basename(entry), entry];
        data[key] = fs.readFileSync(file_in(dir, file, `${dir}: configMapGenerator`), 'utf8');
    }
    const metadata = { name: generator.name };
    if (generator.namespace) {
        metadata.namespace = generator.namespace;
    }
    return { apiVersion: 'v1', kind: 'ConfigMap', metadata, data };
}

// The patchMergeKey of each list of objects the patches may touch, from the Kubernetes API's strategic-merge-patch
// tags; any other list of objects is refused. A list of scalars is replaced, as the API does for args, command
// and policyTypes (not for metadata.finalizers, which no patch here touches).
const MERGE_KEYS = {
    containers: 'name',
    initContainers: 'name',
    env: 'name',
    volumes: 'name',
    volumeMounts: 'mountPath',
};

function merge_key(field, parent_path, kind) {
    if (field === 'ports') {
        // A Service's ports merge by port, a container's by containerPort.
        return kind === 'Service' && parent_path === 'spec' ? 'port' : 'containerPort';
    }
    return MERGE_KEYS[field];
}

function strategic_merge(target, patch, kind, where) {
    for (const [key, value] of Object.entries(patch)) {
        const here = where === '' ? key : `${where}.${key}`;
        if (value === null) {
            delete target[key];
        } else if (Array.isArray(value)) {
            const existing = target[key];
            if (value.every((item) => typeof item !== 'object')) {
                target[key] = value;
                continue;
            }
            const merge_by = merge_key(key, where, kind);
            if (merge_by === undefined) {
                throw new UsageError(`patch of ${kind} at ${here}: merging this list is not implemented`);
            }
            const merged = Array.isArray(existing) ? existing : [];
            const added = [];
            for (const item of value) {
                const match = merged.find((old) => old[merge_by] === item[merge_by]);
                if (match) {
                    strategic_merge(match, item, kind, `${here}[${merge_by}=${item[merge_by]}]`);
                } else {
                    added.push(item);
                }
            }
            // New items come first, in the patch's order, as kustomize writes them.
            target[key] = [...added, ...merged];
        } else if (typeof value === 'object') {
            if (typeof target[key] !== 'object' || target[key] === null || Array.isArray(target[key])) {
                target[key] = {};
            }
            strategic_merge(target[key], value, kind, here);
        } else {
            target[key] = value;
        }
    }
}

function pod_spec_of(object) {
    if (object.spec && object.spec.template && object.spec.template.spec) {
        return object.spec.template.spec;
    }
    return object.kind === 'Pod' ? object.spec : undefined;
}

function set_images(objects, images) {
    for (const image of images) {
        check_keys('images', image, ['name', 'newName', 'newTag']);
        for (const object of objects) {
            const pod = pod_spec_of(object);
            if (!pod) {
                continue;
            }
            for (const container of [...(pod.containers || []), ...(pod.initContainers || [])]) {
                const name = container.image.replace(/[:@].*$/, '');
                if (name !== image.name) {
                    continue;
                }
                const tag = image.newTag !== undefined ? `:${image.newTag}` : container.image.slice(name.length);
                container.image = `${image.newName || name}${tag}`;
            }
        }
    }
}

function render(dir) {
    const file = path.join(dir, 'kustomization.yaml');
    const [kustomization] = parse_documents(file);
    check_keys(file, kustomization, ['apiVersion', 'kind', 'resources', 'configMapGenerator', 'patches', 'images']);
    if (kustomization.kind !== undefined && kustomization.kind !== 'Kustomization') {
        throw new UsageError(`${file}: kind is not Kustomization`);
    }
    const objects = [];
    for (const resource of kustomization.resources || []) {
        const full = path.resolve(dir, resource);
        if (fs.statSync(full).isDirectory()) {
            objects.push(...render(full));
        } else {
            objects.push(...parse_documents(full));
        }
    }
    for (const generator of kustomization.configMapGenerator || []) {
        const made = generate_config_map(dir, generator);
        const existing = objects.find((object) => id_of(object) === id_of(made));
        const behavior = generator.behavior || 'create';
        if (behavior === 'create') {
            if (existing) {
                throw new UsageError(`${file}: ConfigMap ${made.metadata.name} exists already (behavior: create)`);
            }
            objects.push(made);
        } else if (behavior === 'replace' || behavior === 'merge') {
            if (!existing) {
                throw new UsageError(`${file}: no ConfigMap ${made.metadata.name} to ${behavior}`);
            }
            existing.data = behavior === 'replace' ? made.data : { ...existing.data, ...made.data };
        } else {
            throw new UsageError(`${file}: configMapGenerator behavior '${behavior}' is unknown`);
        }
    }
    for (const patch_entry of kustomization.patches || []) {
        check_keys(`${file}: patches`, patch_entry, ['path']);
        for (const patch of parse_documents(file_in(dir, patch_entry.path, file))) {
            const target = objects.find(
                (object) => object.apiVersion === patch.apiVersion && id_of(object) === id_of(patch));
            if (!target) {
                throw new UsageError(`${file}: patch ${patch_entry.path} matches no object (${id_of(patch)})`);
            }
            strategic_merge(target, patch, target.kind, '');
        }
    }
    set_images(objects, kustomization.images || []);
    const seen = new Set();
    for (const object of objects) {
        if (seen.has(id_of(object))) {
            throw new UsageError(`${file}: ${id_of(object)} appears twice`);
        }
        seen.add(id_of(object));
    }
    return objects;
}

// The model of an object: kubernetes-models for the Kubernetes API groups, its prometheus-operator package for
// monitoring.coreos.com. Returns the module (as the packages export it) and the interface name.
function model_of(object) {
    if (typeof object.apiVersion !== 'string' || typeof object.kind !== 'string') {
        return undefined;
    }
    const package_name = object.apiVersion.startsWith('monitoring.coreos.com/')
        ? '@kubernetes-models/prometheus-operator'
        : 'kubernetes-models';
    const module = `${package_name}/${object.apiVersion}/${object.kind}`;
    try {
        require.resolve(module);
    } catch {
        return undefined;
    }
    return { module, type: `I${object.kind}` };
}

function schema_errors(object) {
    const model = model_of(object);
    if (!model) {
        return [`no schema for apiVersion ${object.apiVersion} kind ${object.kind}`];
    }
    const Model = require(model.module)[object.kind];
    try {
        new Model(object).validate();
        return [];
    } catch (error) {
        return [error.message];
    }
}

// Type-checks each object as a literal of its model's interface: an unknown field is an excess property.
function type_errors(objects) {
    const ts = require('typescript');
    const sources = new Map();
    objects.forEach((object, i) => {
        const model = model_of(object);
        if (model) {
            const text = `import type { ${model.type} } from "${model.module}";\n` +
                `export const object: ${model.type} = ${JSON.stringify(object, null, 2)};\n`;
            sources.set(path.join(__dirname, `object-${i}.ts`), { text, index: i });
        }
    });
    const options = {
        strict: true,
        noEmit: true,
        skipLibCheck: true,
        types: [],
        module: ts.ModuleKind.CommonJS,
        moduleResolution: ts.ModuleResolutionKind.Node10,
        target: ts.ScriptTarget.ES2020,
    };
    const host = ts.createCompilerHost(options);
    const read_file = host.readFile.bind(host);
    const file_exists = host.fileExists.bind(host);
    const get_source_file = host.getSourceFile.bind(host);
    host.fileExists = (name) => sources.has(name) || file_exists(name);
    host.readFile = (name) => (sources.has(name) ? sources.get(name).text : read_file(name));
    host.getSourceFile = (name, version) => sources.has(name)
        ? ts.createSourceFile(name, sources.get(name).text, version)
        : get_source_file(name, version);
    const program = ts.createProgram([...sources.keys()], options, host);
    const errors = objects.map(() => []);
    for (const diagnostic of ts.getPreEmitDiagnostics(program)) {
        const source = diagnostic.file && sources.get(diagnostic.file.fileName);
        const message = ts.flattenDiagnosticMessageText(diagnostic.messageText, ' ');
        if (!source) {
            throw new Error(`TypeScript: ${message}`);
        }
        const { line } = diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start);
        const at = sources.get(diagnostic.file.fileName).text.split('\n')[line].trim();
        errors[source.index].push(`${message} (at ${at})`);
    }
    return errors;
}

function validate(objects) {
    const types = type_errors(objects);
    const report = [];
    objects.forEach((object, i) => {
        for (const error of [...schema_errors(object), ...types[i]]) {
            report.push(`${id_of(object)}: ${error}`);
        }
    });
    return report;
}

function main(argv) {
    const [command, argument] = argv;
    try {
        if (command === 'render' && argument) {
            process.stdout.write(JSON.stringify(render(path.resolve(argument)), null, 2) + '\n');
            return 0;
        }
        if (command === 'yaml-to-json' && argument) {
            // egressd's own files (its server configuration) are YAML 1.2, as libfyaml reads them.
            const value = YAML.parse(fs.readFileSync(argument, 'utf8'));
            process.stdout.write(JSON.stringify(value) + '\n');
            return 0;
        }
        if (command === 'validate' && argument) {
            const report = validate(JSON.parse(fs.readFileSync(argument, 'utf8')));
            for (const line of report) {
                process.stdout.write(line + '\n');
            }
            return report.length === 0 ? 0 : 1;
        }
        process.stderr.write('usage: node manifests.js render DIR | validate FILE.json | yaml-to-json FILE\n');
        return 2;
    } catch (error) {
        if (error instanceof UsageError || error.code === 'ENOENT') {
            process.stderr.write(`error: ${error.message}\n`);
            return 1;
        }
        throw error;
    }
}

process.exitCode = main(process.argv.slice(2));
