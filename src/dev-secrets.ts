// Secrets for embedded (development) mode only: created once in DATA_DIR with
// mode 0600 and reused, so tokens minted yesterday still verify today.
import { randomBytes } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'

export interface DevSecrets {
  jwtSecret: string
  pgPassword: string
}

export function devSecretsPath(dataDir: string): string {
  return path.join(dataDir, 'dev-secrets.json')
}

export function loadDevSecrets(dataDir: string): DevSecrets {
  // 0711: other users (the embedded server's `postgres` user when we run as
  // root) may traverse into DATA_DIR/pg but may not list or read our files.
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o711 })
  const file = devSecretsPath(dataDir)
  const fresh: DevSecrets = {
    jwtSecret: randomBytes(32).toString('base64url'),
    pgPassword: randomBytes(18).toString('base64url'),
  }
  try {
    // 'wx' fails if the file exists, so two processes starting at once agree.
    fs.writeFileSync(file, JSON.stringify(fresh, null, 2) + '\n', { flag: 'wx', mode: 0o600 })
    return fresh
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
  }
  return JSON.parse(fs.readFileSync(file, 'utf8')) as DevSecrets
}
