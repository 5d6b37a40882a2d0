/** Creates the database when missing and applies pending migrations:  tsx scripts/migrate.ts */
import { loadConfigOrExit } from '../common/config.js';
import { migrate } from '../common/db.js';

const config = loadConfigOrExit();
const applied = await migrate(config.DATABASE_URL);
process.stdout.write(applied.length ? `applied: ${applied.join(', ')}\n` : 'database is up to date\n');
