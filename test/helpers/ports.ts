export { freePort } from '../../common/processes.js';
