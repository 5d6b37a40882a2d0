/**
 * Repositories as a tenant's resources (common/repositories.ts). Anyone with `viewer` reads the tenant's repositories;
 * only an `admin` registers or removes one (a repository is what the execution workers clone, with the credentials
 * its secret reference names). Another tenant's repository is a 404. Every change is audited.
 */
import { Router, type Response } from 'express';
import {
  confineFileRepository,
  deleteRepository,
  getRepository,
  insertRepository,
  listRepositories,
  redactUrl,
  RepositoryIdSchema,
  RepositoryInputSchema,
  RepositoryRefused,
  rootsFor,
  type Repository,
} from '../../common/repositories.js';
import type { AppDeps } from '../app.js';
import { conflict, HttpProblem, notFound, validate } from '../errors.js';
import { auditByCaller, principalOf, requireRole } from '../principal.js';

function view(r: Repository) {
  return {
    id: r.id,
    url: r.url,
    default_ref: r.defaultRef,
    auth_secret_ref: r.authSecretRef,
    deliver_branch: r.deliverBranch,
    gates: r.gates,
    created_by: r.createdBy,
    created_at: r.createdAt,
  };
}

export function repositoryRoutes({ db, config }: Pick<AppDeps, 'db' | 'config'>): Router {
  const router = Router();

  const load = async (res: Response, raw: string): Promise<Repository> => {
    const id = validate(RepositoryIdSchema, raw, 'params');
    const repo = await getRepository(db, principalOf(res).tenantId, id);
    if (!repo) throw notFound(`no repository ${id}`);
    return repo;
  };

  const audit = (res: Response, action: string, subject: string, payload: Record<string, unknown>) =>
    auditByCaller(db, res, action, subject, payload);

  router.get('/api/v1/repositories', requireRole('viewer'), async (_req, res) => {
    res.json({ items: (await listRepositories(db, principalOf(res).tenantId)).map(view) });
  });

  router.post('/api/v1/repositories', requireRole('admin'), async (req, res) => {
    const body = validate(RepositoryInputSchema, req.body);
    const p = principalOf(res);
    let url = body.url;
    if (url.startsWith('file:')) {
      // Confined to the tenant's roots after realpath; stored as the real path, checked again at clone time.
      try {
        const real = await confineFileRepository(url, rootsFor(config.REPOSITORY_FILE_ROOTS, p.tenantId));
        url = new URL(`file://${real}`).toString();
      } catch (err) {
        if (err instanceof RepositoryRefused) throw new HttpProblem(400, 'Bad Request', err.message);
        throw err;
      }
    }
    const created = await insertRepository(db, p.tenantId, p.subject, { ...body, url });
    if (!created) throw conflict(`a repository with id ${body.id} already exists`);
    await audit(res, 'repository.registered', created.id, {
      url: redactUrl(created.url),
      default_ref: created.defaultRef,
      auth_secret_ref: created.authSecretRef,
      deliver_branch: created.deliverBranch,
    });
    res.status(201).location(`/api/v1/repositories/${created.id}`).json(view(created));
  });

  router.get('/api/v1/repositories/:id', requireRole('viewer'), async (req, res) => {
    res.json(view(await load(res, String(req.params.id))));
  });

  router.delete('/api/v1/repositories/:id', requireRole('admin'), async (req, res) => {
    const repo = await load(res, String(req.params.id));
    await deleteRepository(db, principalOf(res).tenantId, repo.id);
    await audit(res, 'repository.removed', repo.id, { url: redactUrl(repo.url) });
    res.status(204).end();
  });

  return router;
}
