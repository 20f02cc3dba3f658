// GET /demo: a page that drives the browser SDK and shows its queue stats
// live; GET /sdk/<file>: the built SDK (bundle, source map, types). Both
// need the bundle built first (dist/ is not committed: `npm start` bundles it,
// or `npm run build:sdk`); until then they answer a coded 404 saying so.
import fs from 'node:fs/promises'
import path from 'node:path'
import type { FastifyPluginAsync } from 'fastify'
import { Errors } from '../../errors.ts'

const root = path.resolve(import.meta.dirname, '..', '..', '..')
const DEMO_PAGE = path.join(root, 'src', 'client', 'demo.html')

export interface DemoRoutesOptions {
  /** Where scripts/build-sdk.ts writes the bundle. */
  sdkDir?: string
}

const SDK_FILES: Record<string, string> = {
  'ingest-client.js': 'text/javascript; charset=utf-8',
  'ingest-client.js.map': 'application/json; charset=utf-8',
  'ingest-client.d.ts': 'text/plain; charset=utf-8',
}

async function readBuilt(file: string): Promise<Buffer> {
  try {
    return await fs.readFile(file)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new Errors.NOT_FOUND(`${path.basename(file)} is not built: run \`npm run build:sdk\``)
    }
    throw error
  }
}

const demoRoutes: FastifyPluginAsync<DemoRoutesOptions> = async (app, options) => {
  const sdkDir = options.sdkDir ?? path.join(root, 'dist', 'sdk')

  app.get('/demo', { config: { public: true }, schema: { hide: true } }, async (_request, reply) => {
    await readBuilt(path.join(sdkDir, 'ingest-client.js'))
    return reply.type('text/html; charset=utf-8').header('cache-control', 'no-cache').send(await fs.readFile(DEMO_PAGE))
  })

  app.get<{ Params: { file: string } }>('/sdk/:file', { config: { public: true }, schema: { hide: true } }, async (request, reply) => {
    const type = Object.hasOwn(SDK_FILES, request.params.file) ? SDK_FILES[request.params.file] : undefined
    if (!type) throw new Errors.NOT_FOUND(`/sdk/${request.params.file}`)
    const contents = await readBuilt(path.join(sdkDir, request.params.file))
    // Rebuilt in place during development: revalidate rather than cache.
    return reply.type(type).header('cache-control', 'no-cache').send(contents)
  })
}

export default demoRoutes
