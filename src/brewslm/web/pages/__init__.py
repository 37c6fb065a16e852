"""The UI's page routers, one module per group of pages; ui.add_ui includes each ROUTER."""

from brewslm.web.pages import data, model, observe, projects, ship, wizard

ROUTERS = [projects.router, wizard.router, data.router, model.router, ship.router,
           observe.router]
